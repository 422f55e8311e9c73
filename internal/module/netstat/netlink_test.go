package netstat

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// nlMsg builds one netlink message.
func nlMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, align4(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// rtAttr builds one route attribute.
func rtAttr(typ uint16, data []byte) []byte {
	b := make([]byte, 4, align4(4+len(data)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func linkBody(index int32, name string, mac []byte) []byte {
	b := make([]byte, ifInfoMsgLen)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	b = append(b, rtAttr(iflaIfname, append([]byte(name), 0))...)
	if mac != nil {
		b = append(b, rtAttr(iflaAddress, mac)...)
	}
	return b
}

func addrBody(index uint32, local, peer netip.Addr) []byte {
	b := make([]byte, ifAddrMsgLen)
	binary.NativeEndian.PutUint32(b[4:8], index)
	if peer.IsValid() {
		b = append(b, rtAttr(ifaAddress, peer.AsSlice())...)
	}
	if local.IsValid() {
		b = append(b, rtAttr(ifaLocal, local.AsSlice())...)
	}
	return b
}

func neighBody(index int32, state uint16, ip netip.Addr, mac []byte) []byte {
	b := make([]byte, ndMsgLen)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint16(b[8:10], state)
	b = append(b, rtAttr(ndaDst, ip.AsSlice())...)
	if mac != nil {
		b = append(b, rtAttr(ndaLladdr, mac)...)
	}
	return b
}

func errBody(code int32) []byte {
	b := make([]byte, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:4], uint32(code))
	return b
}

func TestParseNetlink(t *testing.T) {
	mac := []byte{0x8c, 0x70, 0x5a, 0xc8, 0xbe, 0x50}
	var dgram []byte
	dgram = append(dgram, nlMsg(rtmNewLink, 7, linkBody(2, "eth0", mac))...)
	dgram = append(dgram, nlMsg(rtmNewLink, 99, linkBody(3, "other-seq", mac))...)
	dgram = append(dgram, nlMsg(rtmNewLink, 7, linkBody(1, "lo", make([]byte, 6)))...)
	dgram = append(dgram, nlMsg(nlmsgDone, 7, make([]byte, 4))...)
	msgs, done, err := parseNetlink(dgram, 7)
	if err != nil || !done || len(msgs) != 2 {
		t.Fatalf("parseNetlink = %d messages, done %v, %v; want 2, true, nil", len(msgs), done, err)
	}
	l, err := parseLink(msgs[0])
	if err != nil || l.index != 2 || l.name != "eth0" || l.mac != "8c:70:5a:c8:be:50" {
		t.Errorf("parseLink = %+v, %v; want eth0 (2) 8c:70:5a:c8:be:50", l, err)
	}
	if l, err := parseLink(msgs[1]); err != nil || l.name != "lo" || l.mac != "" {
		t.Errorf("parseLink = %+v, %v; want lo without a MAC", l, err)
	}

	_, done, err = parseNetlink(nlMsg(rtmNewLink, 7, linkBody(2, "eth0", mac)), 7)
	if err != nil || done {
		t.Errorf("parseNetlink of a partial dump: done %v, %v; want false, nil", done, err)
	}
	_, _, err = parseNetlink(nlMsg(nlmsgError, 7, errBody(-1)), 7)
	if e, ok := err.(nlError); !ok || e.errno != 1 {
		t.Errorf("parseNetlink of an error = %v, want netlink error 1", err)
	}
	if _, done, err := parseNetlink(nlMsg(nlmsgError, 7, errBody(0)), 7); err != nil || !done {
		t.Errorf("parseNetlink of an acknowledgement: done %v, %v; want true, nil", done, err)
	}

	local, peer := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a, err := parseAddr(nlMessage{typ: rtmNewAddr, body: addrBody(4, local, peer)})
	if err != nil || a.index != 4 || a.addr != local {
		t.Errorf("parseAddr = %+v, %v; want 10.0.0.1 on 4", a, err)
	}
	v6 := netip.MustParseAddr("2001:db8::1")
	if a, err := parseAddr(nlMessage{typ: rtmNewAddr, body: addrBody(5, netip.Addr{}, v6)}); err != nil || a.addr != v6 {
		t.Errorf("parseAddr = %+v, %v; want 2001:db8::1", a, err)
	}

	ip := netip.MustParseAddr("fe80::8e70:5aff:fec8:be50")
	n, err := parseNeigh(nlMessage{typ: rtmNewNeigh, body: neighBody(2, 0x04, ip, mac)})
	if err != nil || n.ip != ip || n.mac != "8c:70:5a:c8:be:50" || stateName(n.state) != "STALE" {
		t.Errorf("parseNeigh = %+v, %v; want %s 8c:70:5a:c8:be:50 STALE", n, err, ip)
	}
	if got := stateName(0x80 | 0x40); got != "NOARP,PERMANENT" {
		t.Errorf("stateName = %q", got)
	}
	if got := stateName(0); got != "NONE" {
		t.Errorf("stateName(0) = %q", got)
	}
}

func TestParseNetlinkErrors(t *testing.T) {
	good := nlMsg(rtmNewLink, 1, linkBody(2, "eth0", nil))
	short := append([]byte{}, good...)
	binary.NativeEndian.PutUint32(short[0:4], 8)
	long := append([]byte{}, good...)
	binary.NativeEndian.PutUint32(long[0:4], uint32(len(good)+4))
	for _, tt := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated header", good[:10], "shorter than its header"},
		{"length under header", short, "outside"},
		{"length over buffer", long, "outside"},
		{"short error", nlMsg(nlmsgError, 1, []byte{1}), "too short"},
	} {
		if _, _, err := parseNetlink(tt.b, 1); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: parseNetlink error = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	badAttr := linkBody(2, "eth0", nil)
	binary.NativeEndian.PutUint16(badAttr[ifInfoMsgLen:], 200)
	for _, tt := range []struct {
		name string
		fn   func() error
	}{
		{"link too short", func() error { _, err := parseLink(nlMessage{typ: rtmNewLink, body: []byte{1}}); return err }},
		{"link bad attribute", func() error { _, err := parseLink(nlMessage{typ: rtmNewLink, body: badAttr}); return err }},
		{"not a link", func() error { _, err := parseLink(nlMessage{typ: rtmNewAddr, body: make([]byte, 32)}); return err }},
		{"address without address", func() error {
			_, err := parseAddr(nlMessage{typ: rtmNewAddr, body: make([]byte, ifAddrMsgLen)})
			return err
		}},
		{"neighbour without destination", func() error {
			_, err := parseNeigh(nlMessage{typ: rtmNewNeigh, body: make([]byte, ndMsgLen)})
			return err
		}},
	} {
		if err := tt.fn(); err == nil {
			t.Errorf("%s: error = nil, want one", tt.name)
		}
	}
}

func FuzzParseNetlink(f *testing.F) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	f.Add(append(nlMsg(rtmNewLink, 1, linkBody(2, "eth0", mac)), nlMsg(nlmsgDone, 1, make([]byte, 4))...))
	f.Add(nlMsg(rtmNewAddr, 1, addrBody(2, netip.MustParseAddr("10.0.0.1"), netip.Addr{})))
	f.Add(nlMsg(rtmNewNeigh, 1, neighBody(2, 2, netip.MustParseAddr("fe80::1"), mac)))
	f.Add(nlMsg(nlmsgError, 1, errBody(-13)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _, err := parseNetlink(b, 1)
		if err != nil {
			return
		}
		for _, m := range msgs {
			_, _ = parseLink(m)
			_, _ = parseAddr(m)
			if n, err := parseNeigh(m); err == nil && !n.ip.IsValid() {
				t.Errorf("parseNeigh accepted %x without a valid address", m.body)
			}
		}
	})
}

func TestMatch(t *testing.T) {
	r, err := parse([]byte(`{"localmac":["^02:AA"],"localip":["10.0.0.0/8"],"neighbormac":["8c:70:5a:c8:be:50"],` +
		`"neighborip":["192.0.2.0/24"],"connectedip":["13.37.66.66","2001:db8::/32"],"listeningport":[22,53]}`))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	snaps := []snapshot{
		{
			ifaces: []iface{
				{name: "eth0", mac: "02:aa:00:00:00:01", addrs: []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fe80::1")}},
				{name: "lo", addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
			},
			neighbours: []neighbour{
				{ip: netip.MustParseAddr("192.0.2.1"), mac: "8c:70:5a:c8:be:50", iface: "eth0", state: "COMPLETE"},
				{ip: netip.MustParseAddr("198.51.100.1"), mac: "00:11:22:33:44:55", iface: "eth0", state: "COMPLETE"},
			},
			sockets: []socket{
				{proto: "tcp", local: ap("10.1.2.3:5000"), remote: ap("13.37.66.66:443"), state: "ESTABLISHED", inode: 11},
				{proto: "tcp6", local: ap("[::ffff:10.1.2.3]:22"), remote: ap("[::ffff:13.37.66.66]:6000"), state: "ESTABLISHED", inode: 12},
				{proto: "tcp6", local: ap("[2001:db8::5]:22"), remote: ap("[2001:db8::6]:7000"), state: "TIME_WAIT"},
				{proto: "tcp", local: ap("0.0.0.0:22"), remote: ap("0.0.0.0:0"), state: "LISTEN", inode: 13},
				{proto: "tcp", local: ap("10.1.2.3:22"), remote: ap("13.37.66.67:1"), state: "ESTABLISHED", inode: 14},
				{proto: "udp", local: ap("0.0.0.0:53"), remote: ap("0.0.0.0:0"), state: "UNCONN", inode: 15},
				{proto: "udp", local: ap("10.1.2.3:53"), remote: ap("13.37.66.66:53"), state: "ESTABLISHED", inode: 16},
				{proto: "udp6", local: ap("[::]:53"), remote: ap("[::]:0"), state: "UNCONN", inode: 17},
			},
		},
		{
			ns:         nsInfo{id: "net:[42]", name: "blue"},
			neighbours: []neighbour{{ip: netip.MustParseAddr("fe80::2"), mac: "8C:70:5A:C8:BE:50", iface: "veth0", state: "STALE"}},
		},
	}
	h, st, inodes := r.match(snaps)
	el := h.elements()
	count := func(m map[string][]Element, v string) int { return len(m[v]) }
	checks := []struct {
		what      string
		got, want int
	}{
		{"localmac", count(el.LocalMAC, "^02:AA"), 1},
		{"localip", count(el.LocalIP, "10.0.0.0/8"), 1},
		{"neighbormac (both namespaces, any case)", count(el.NeighborMAC, "8c:70:5a:c8:be:50"), 2},
		{"neighborip", count(el.NeighborIP, "192.0.2.0/24"), 1},
		{"connectedip v4 and mapped", count(el.ConnectedIP, "13.37.66.66"), 3},
		{"connectedip v6", count(el.ConnectedIP, "2001:db8::/32"), 1},
		{"listening tcp", count(el.ListeningPort, "22"), 1},
		{"listening udp", count(el.ListeningPort, "53"), 2},
		{"namespaces", st.Namespaces, 2},
		{"sockets", st.Sockets, 8},
		{"total hits", st.TotalHits, 12},
		{"inodes", len(inodes), 6},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
	if ns := el.NeighborMAC["8c:70:5a:c8:be:50"]; len(ns) == 2 && (ns[0].Namespace != "" || ns[1].Namespace != "net:[42]" || ns[1].NamespaceName != "blue") {
		t.Errorf("neighbours = %+v, want the agent's own first, then net:[42] (blue)", ns)
	}
	if l := el.ListeningPort["22"]; len(l) == 1 && (l[0].RemoteAddr != "" || l[0].State != "LISTEN") {
		t.Errorf("listening element = %+v, want no remote address and LISTEN", l[0])
	}
}

func TestMatchLimit(t *testing.T) {
	r, err := parse([]byte(`{"connectedip":["10.0.0.0/8"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var sn snapshot
	for i := range MaxMatchesPerValue + 5 {
		sn.sockets = append(sn.sockets, socket{proto: "tcp", local: netip.MustParseAddrPort("127.0.0.1:1"),
			remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(i+1)), state: "ESTABLISHED"})
	}
	h, st, _ := r.match([]snapshot{sn})
	if got := len(h.elements().ConnectedIP["10.0.0.0/8"]); got != MaxMatchesPerValue || st.Dropped != 5 {
		t.Errorf("got %d elements, %d dropped; want %d, 5", got, st.Dropped, MaxMatchesPerValue)
	}
}
