package netstat

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/migplatform/mig/internal/action"
)

// PrintResult writes one line per element, as MIG prints them, kinds in
// the order localmac, neighbormac, localip, neighborip, connectedip,
// listeningport, and values in sorted order:
//
//	<agent> found local mac <mac> on <interface> for netstat localmac:'<regex>'
//	<agent> found neighbor mac <mac> with ip <ip> on <interface> (<state>) for netstat neighbormac:'<regex>'
//	<agent> found local ip <ip> on <interface> (mac <mac>) for netstat localip:'<cidr>'
//	<agent> found neighbor ip <ip> with mac <mac> on <interface> (<state>) for netstat neighborip:'<cidr>'
//	<agent> found connected tuple <remote>:<port> with local tuple <local>:<port> (<proto> <state>, pid <pid> <name>) for netstat connectedip:'<cidr>'
//	<agent> found listening port <port> on <local> (<proto> <state>, pid <pid> <name>) for netstat listeningport:'<port>'
//
// An element of another network namespace has " in netns <name>
// net:[<inode>]" before " for netstat". It prints nothing when nothing was
// found.
func (netstatModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("netstat module elements: %w", err)
	}
	kinds := []struct {
		name   string
		m      map[string][]Element
		format func(Element) string
	}{
		{"localmac", el.LocalMAC, func(e Element) string {
			return fmt.Sprintf("found local mac %s on %s", e.LocalMACAddr, orUnknown(e.Interface))
		}},
		{"neighbormac", el.NeighborMAC, func(e Element) string {
			return fmt.Sprintf("found neighbor mac %s with ip %s on %s (%s)", e.RemoteMACAddr, e.RemoteAddr, orUnknown(e.Interface), orUnknown(e.State))
		}},
		{"localip", el.LocalIP, func(e Element) string {
			s := fmt.Sprintf("found local ip %s on %s", e.LocalAddr, orUnknown(e.Interface))
			if e.LocalMACAddr != "" {
				s += " (mac " + e.LocalMACAddr + ")"
			}
			return s
		}},
		{"neighborip", el.NeighborIP, func(e Element) string {
			return fmt.Sprintf("found neighbor ip %s with mac %s on %s (%s)", e.RemoteAddr, e.RemoteMACAddr, orUnknown(e.Interface), orUnknown(e.State))
		}},
		{"connectedip", el.ConnectedIP, func(e Element) string {
			return fmt.Sprintf("found connected tuple %s with local tuple %s (%s)",
				hostPort(e.RemoteAddr, e.RemotePort), hostPort(e.LocalAddr, e.LocalPort), socketDetail(e))
		}},
		{"listeningport", el.ListeningPort, func(e Element) string {
			return fmt.Sprintf("found listening port %d on %s (%s)", e.LocalPort, e.LocalAddr, socketDetail(e))
		}},
	}
	for _, k := range kinds {
		values := make([]string, 0, len(k.m))
		for v := range k.m {
			values = append(values, v)
		}
		slices.Sort(values)
		for _, v := range values {
			for _, e := range k.m[v] {
				ns := ""
				if e.Namespace != "" {
					ns = " in netns "
					if e.NamespaceName != "" {
						ns += e.NamespaceName + " "
					}
					ns += e.Namespace
				}
				if _, err := fmt.Fprintf(w, "%s %s%s for netstat %s:'%s'\n", agentName, k.format(e), ns, k.name, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// socketDetail is the parenthesised part of a socket line: protocol,
// state, processes.
func socketDetail(e Element) string {
	s := strings.TrimSpace(e.Protocol + " " + e.State)
	if len(e.Processes) == 0 {
		return s + ", process unknown"
	}
	for _, p := range e.Processes {
		s += ", pid " + strconv.Itoa(p.PID) + " " + p.Name
	}
	return s
}

func hostPort(addr string, port int) string {
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
