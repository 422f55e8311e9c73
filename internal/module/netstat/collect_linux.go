//go:build linux

package netstat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/migplatform/mig/internal/module"
)

// Where the collector looks. They are variables only so that the tests of
// this package can point the namespace bind mounts elsewhere.
var (
	procRoot  = "/proc"
	netnsRoot = "/run/netns"
)

// maxOwners bounds the processes listed for one socket.
const maxOwners = 32

// pidsPerNamespace is how many processes of each namespace are kept, to
// fall back on when one exits before its tables are read.
const pidsPerNamespace = 4

// nsRef is a network namespace other than the agent's own.
type nsRef struct {
	ino  uint64
	pids []int  // processes in it, ascending
	name string // its name under netnsRoot, if any
	path string // its bind mount under netnsRoot, if any
}

func (n nsRef) info() nsInfo {
	return nsInfo{id: fmt.Sprintf("net:[%d]", n.ino), name: n.name}
}

// describe names the namespace in error messages.
func (n nsRef) describe() string {
	s := n.info().id
	if n.name != "" {
		s += " (" + n.name + ")"
	}
	return "namespace " + s
}

// collect reads the agent's own namespace, then, with searchnamespaces,
// every other one.
func collect(ctx context.Context, r *runner, env module.Env) collection {
	var c collection
	own, errs := r.read(nsInfo{}, openIn(filepath.Join(procRoot, "thread-self", "net")), direct)
	c.snaps = append(c.snaps, own)
	if len(errs) > 0 {
		c.failed = true
		c.errs = append(c.errs, errs...)
	}
	if !r.namespaces || ctx.Err() != nil {
		return c
	}
	others, err := listNamespaces()
	if err != nil {
		c.errs = append(c.errs, fmt.Sprintf("listing network namespaces: %v", err))
		c.failed = true
		return c
	}
	// Reading a namespace's tables is mostly kernel time (each /proc/net
	// table walks the kernel's hash tables), so a few namespaces are read
	// at once, within the CPUs the module may use.
	type done struct {
		snap snapshot
		errs []string
		ok   bool
	}
	results := make([]done, len(others))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(others), readers(env)) {
		wg.Go(func() {
			for i := range next {
				snap, errs := r.readOther(others[i])
				results[i] = done{snap: snap, errs: errs, ok: true}
			}
		})
	}
feed:
	for i := range others {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for i, d := range results {
		if !d.ok {
			continue
		}
		c.snaps = append(c.snaps, d.snap)
		for _, e := range d.errs {
			c.errs = append(c.errs, others[i].describe()+": "+e)
		}
	}
	return c
}

// readers is how many namespaces are read at once: the CPUs the module
// may use, at most 4.
func readers(env module.Env) int {
	n := runtime.GOMAXPROCS(0)
	if env.MaxProcs > 0 {
		n = min(n, env.MaxProcs)
	}
	return max(1, min(n, 4))
}

// direct runs fn in the calling thread's namespace.
func direct(fn func() error) error { return fn() }

// openIn opens the /proc/net tables under dir.
func openIn(dir string) func(string) (io.ReadCloser, error) {
	return func(name string) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, name)) }
}

// readOther reads another namespace: through the /proc/<pid>/net tables of
// one of its processes, entering it only for netlink; or, when no process
// is in it, entirely from a thread that entered it.
func (r *runner) readOther(ns nsRef) (snapshot, []string) {
	if ns.path != "" && len(ns.pids) == 0 {
		var snap snapshot
		var errs []string
		err := inNetns(ns.path, func() error {
			snap, errs = r.read(ns.info(), openIn(filepath.Join(procRoot, "thread-self", "net")), direct)
			return nil
		})
		if err != nil {
			return snapshot{ns: ns.info()}, []string{err.Error()}
		}
		return snap, errs
	}
	var snap snapshot
	var errs []string
	for i, pid := range ns.pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		nsPath := filepath.Join(dir, "ns", "net")
		if ns.path != "" {
			nsPath = ns.path
		}
		enter := func(fn func() error) error { return inNetns(nsPath, fn) }
		snap, errs = r.read(ns.info(), openIn(filepath.Join(dir, "net")), enter)
		if len(errs) == 0 || i == len(ns.pids)-1 {
			break
		}
		if _, err := os.Stat(dir); err == nil {
			break // the process is still there: its errors stand
		}
	}
	return snap, errs
}

// read reads what the searches need of one namespace: open opens its
// /proc/net tables, enter runs a function where netlink sockets land in
// it. It returns one error string per part it could not read.
func (r *runner) read(info nsInfo, open func(string) (io.ReadCloser, error), enter func(func() error) error) (snapshot, []string) {
	snap := snapshot{ns: info}
	var errs []string
	if r.needSockets() {
		for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
			if err := readTable(open, proto, func(rd io.Reader) error {
				return parseSockets(rd, proto, func(s socket) { snap.sockets = append(snap.sockets, s) })
			}); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if r.needNeighbours() {
		if err := readTable(open, "arp", func(rd io.Reader) error {
			return parseARP(rd, func(n neighbour) { snap.neighbours = append(snap.neighbours, n) })
		}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if r.needInterfaces() || r.needNeighbours() {
		err := enter(func() error {
			links, err := dumpLinks()
			if err != nil {
				return err
			}
			if r.needNeighbours() {
				n6, err := dumpNeighbours6(links)
				if err != nil {
					return err
				}
				snap.neighbours = append(snap.neighbours, n6...)
			}
			if r.needInterfaces() {
				addrs, err := dumpAddrs()
				if err != nil {
					return err
				}
				snap.ifaces = interfaces(links, addrs)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	return snap, errs
}

// readTable opens and parses one /proc/net table. A missing IPv6 table
// (IPv6 disabled) is not an error.
func readTable(open func(string) (io.ReadCloser, error), name string, parse func(io.Reader) error) error {
	f, err := open(name)
	if err != nil {
		if strings.HasSuffix(name, "6") && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("reading %s table: %w", name, err)
	}
	defer f.Close()
	return parse(f)
}

// interfaces joins links and their addresses, in index order.
func interfaces(links map[int32]link, addrs []ifAddr) []iface {
	idx := make([]int32, 0, len(links))
	for i := range links {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	byIndex := map[int32]*iface{}
	out := make([]iface, len(idx))
	for k, i := range idx {
		out[k] = iface{name: links[i].name, mac: links[i].mac}
		byIndex[i] = &out[k]
	}
	for _, a := range addrs {
		if in := byIndex[int32(a.index)]; in != nil {
			in.addrs = append(in.addrs, a.addr)
		}
	}
	return out
}

// nsInode returns the inode and device of a namespace file.
func nsInode(path string) (ino, dev uint64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no inode", path)
	}
	return st.Ino, uint64(st.Dev), nil
}

// listNamespaces returns the network namespaces other than the calling
// thread's: those of processes, and the bind mounts under netnsRoot, in
// inode order.
func listNamespaces() ([]nsRef, error) {
	selfIno, selfDev, err := nsInode(filepath.Join(procRoot, "thread-self", "ns", "net"))
	if err != nil {
		return nil, fmt.Errorf("the agent's own namespace: %w", err)
	}
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	byIno := map[uint64]*nsRef{}
	for _, pid := range pids {
		ino, _, err := nsInode(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"))
		if err != nil || ino == selfIno {
			continue // gone, a kernel thread, or not ours to see
		}
		ns := byIno[ino]
		if ns == nil {
			ns = &nsRef{ino: ino}
			byIno[ino] = ns
		}
		if len(ns.pids) < pidsPerNamespace {
			ns.pids = append(ns.pids, pid)
		}
	}
	entries, err := os.ReadDir(netnsRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", netnsRoot, err)
	}
	for _, e := range entries { // in name order
		path := filepath.Join(netnsRoot, e.Name())
		ino, dev, err := nsInode(path)
		if err != nil || dev != selfDev || ino == selfIno {
			continue // not a mounted namespace, or ours
		}
		ns := byIno[ino]
		if ns == nil {
			ns = &nsRef{ino: ino}
			byIno[ino] = ns
		}
		if ns.name == "" {
			ns.name, ns.path = e.Name(), path
		}
	}
	out := make([]nsRef, 0, len(byIno))
	for _, ns := range byIno {
		out = append(out, *ns)
	}
	slices.SortFunc(out, func(a, b nsRef) int {
		switch {
		case a.ino < b.ino:
			return -1
		case a.ino > b.ino:
			return 1
		}
		return 0
	})
	return out, nil
}

// listPIDs returns the process IDs under procRoot, ascending.
func listPIDs() ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", procRoot, err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// socketOwners maps socket inodes to the processes that hold them, by
// reading the /proc/<pid>/fd links of every process. Processes it cannot
// read are skipped.
func socketOwners(ctx context.Context, inodes map[uint64]bool) (map[uint64][]Process, error) {
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	owners := map[uint64][]Process{}
	for _, pid := range pids {
		if ctx.Err() != nil {
			return owners, context.Cause(ctx)
		}
		dir := filepath.Join(procRoot, strconv.Itoa(pid))
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		name := ""
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") || !strings.HasSuffix(target, "]") {
				continue
			}
			ino, err := strconv.ParseUint(target[len("socket:["):len(target)-1], 10, 64)
			if err != nil || !inodes[ino] {
				continue
			}
			if name == "" {
				name = processName(dir)
			}
			list := owners[ino]
			if len(list) < maxOwners && (len(list) == 0 || list[len(list)-1].PID != pid) {
				owners[ino] = append(list, Process{PID: pid, Name: name})
			}
		}
	}
	return owners, nil
}

// processName returns a process's command name, from its comm file.
func processName(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
