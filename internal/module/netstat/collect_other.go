//go:build !linux

package netstat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/migplatform/mig/internal/module"
)

// collect answers localmac and localip from the standard library's list
// of interfaces, and reports every other search as not supported.
func collect(_ context.Context, r *runner, _ module.Env) collection {
	var c collection
	unsupported := func(what string) {
		c.errs = append(c.errs, fmt.Sprintf("%s: %v (%s)", what, ErrNotSupported, runtime.GOOS))
		c.failed = true
	}
	if r.needNeighbours() {
		unsupported("neighbour tables (neighbormac, neighborip)")
	}
	if r.needSockets() {
		unsupported("sockets (connectedip, listeningport)")
	}
	if r.namespaces {
		unsupported("network namespaces (searchnamespaces)")
	}
	var snap snapshot
	if r.needInterfaces() {
		list, err := net.Interfaces()
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("listing interfaces: %v", err))
			c.failed = true
		}
		for _, in := range list {
			x := iface{name: in.Name, mac: macString(in.HardwareAddr)}
			addrs, err := in.Addrs()
			if err != nil {
				c.errs = append(c.errs, fmt.Sprintf("addresses of %s: %v", in.Name, err))
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						x.addrs = append(x.addrs, ip.Unmap())
					}
				}
			}
			snap.ifaces = append(snap.ifaces, x)
		}
	}
	c.snaps = []snapshot{snap}
	return c
}

// socketOwners is never called here: no socket is ever found.
func socketOwners(context.Context, map[uint64]bool) (map[uint64][]Process, error) {
	return nil, nil
}
