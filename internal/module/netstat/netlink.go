package netstat

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Linux rtnetlink ABI values (linux/netlink.h, linux/rtnetlink.h,
// linux/if_link.h, linux/if_addr.h, linux/neighbour.h). They are written
// out here so that the message parsers build, and are fuzzed, on every
// system; a Linux test checks them against golang.org/x/sys/unix.
const (
	nlmsgHdrLen = 16
	nlmsgError  = 2
	nlmsgDone   = 3

	nlmFRequest = 0x1
	nlmFDump    = 0x300

	rtmNewLink  = 16
	rtmGetLink  = 18
	rtmNewAddr  = 20
	rtmGetAddr  = 22
	rtmNewNeigh = 28
	rtmGetNeigh = 30

	ifInfoMsgLen = 16
	ifAddrMsgLen = 8
	ndMsgLen     = 12

	iflaAddress = 1
	iflaIfname  = 3
	ifaAddress  = 1
	ifaLocal    = 2
	ndaDst      = 1
	ndaLladdr   = 2

	nlaTypeMask = 0x3fff
)

// Neighbour states (linux/neighbour.h).
var nudStates = []struct {
	bit  uint16
	name string
}{
	{0x01, "INCOMPLETE"}, {0x02, "REACHABLE"}, {0x04, "STALE"}, {0x08, "DELAY"},
	{0x10, "PROBE"}, {0x20, "FAILED"}, {0x40, "NOARP"}, {0x80, "PERMANENT"},
}

const nudIncomplete, nudFailed, nudNoARP = 0x01, 0x20, 0x40

// nlMessage is one netlink message: its type and what follows its header.
type nlMessage struct {
	typ  uint16
	body []byte
}

// nlError is an error a netlink dump answered with.
type nlError struct {
	errno int32
}

func (e nlError) Error() string { return fmt.Sprintf("netlink error %d", e.errno) }

// parseNetlink splits one datagram of a netlink dump into its messages,
// keeping those of sequence number seq. done is set by NLMSG_DONE; an
// NLMSG_ERROR with a non-zero code is returned as an nlError.
func parseNetlink(b []byte, seq uint32) (msgs []nlMessage, done bool, err error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return nil, false, fmt.Errorf("netlink message of %d bytes is shorter than its header", len(b))
		}
		n := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		mseq := binary.NativeEndian.Uint32(b[8:12])
		if n < nlmsgHdrLen || uint64(n) > uint64(len(b)) {
			return nil, false, fmt.Errorf("netlink message length %d is outside 16..%d", n, len(b))
		}
		body := b[nlmsgHdrLen:n]
		next := min(align4(int(n)), len(b))
		b = b[next:]
		if mseq != seq {
			continue
		}
		switch typ {
		case nlmsgDone:
			return msgs, true, nil
		case nlmsgError:
			if len(body) < 4 {
				return nil, false, fmt.Errorf("netlink error message of %d bytes is too short", len(body))
			}
			if code := int32(binary.NativeEndian.Uint32(body[:4])); code != 0 {
				return nil, false, nlError{errno: -code}
			}
			return msgs, true, nil
		}
		msgs = append(msgs, nlMessage{typ: typ, body: body})
	}
	return msgs, false, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// parseAttrs returns the route attributes in b by type (the first of each
// type).
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	attrs := map[uint16][]byte{}
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if n < 4 || n > len(b) {
			return nil, fmt.Errorf("route attribute length %d is outside 4..%d", n, len(b))
		}
		if _, dup := attrs[typ]; !dup {
			attrs[typ] = b[4:n]
		}
		b = b[min(align4(n), len(b)):]
	}
	return attrs, nil
}

// link is an RTM_NEWLINK message.
type link struct {
	index int32
	name  string
	mac   string
}

func parseLink(m nlMessage) (link, error) {
	if m.typ != rtmNewLink || len(m.body) < ifInfoMsgLen {
		return link{}, fmt.Errorf("netlink message type %d of %d bytes is not a link", m.typ, len(m.body))
	}
	l := link{index: int32(binary.NativeEndian.Uint32(m.body[4:8]))}
	attrs, err := parseAttrs(m.body[ifInfoMsgLen:])
	if err != nil {
		return link{}, fmt.Errorf("link %d: %w", l.index, err)
	}
	l.name = strings.TrimRight(string(attrs[iflaIfname]), "\x00")
	l.mac = macString(attrs[iflaAddress])
	return l, nil
}

// ifAddr is an RTM_NEWADDR message.
type ifAddr struct {
	index uint32
	addr  netip.Addr
}

func parseAddr(m nlMessage) (ifAddr, error) {
	if m.typ != rtmNewAddr || len(m.body) < ifAddrMsgLen {
		return ifAddr{}, fmt.Errorf("netlink message type %d of %d bytes is not an address", m.typ, len(m.body))
	}
	a := ifAddr{index: binary.NativeEndian.Uint32(m.body[4:8])}
	attrs, err := parseAttrs(m.body[ifAddrMsgLen:])
	if err != nil {
		return ifAddr{}, fmt.Errorf("address of link %d: %w", a.index, err)
	}
	// IFA_LOCAL is the local address; IFA_ADDRESS is the peer's on
	// point-to-point links and the same as IFA_LOCAL elsewhere.
	raw := attrs[ifaLocal]
	if raw == nil {
		raw = attrs[ifaAddress]
	}
	addr, ok := netip.AddrFromSlice(raw)
	if !ok {
		return ifAddr{}, fmt.Errorf("address of link %d is %d bytes long", a.index, len(raw))
	}
	a.addr = addr
	return a, nil
}

// neigh is an RTM_NEWNEIGH message.
type neigh struct {
	index int32
	state uint16
	ip    netip.Addr
	mac   string
}

func parseNeigh(m nlMessage) (neigh, error) {
	if m.typ != rtmNewNeigh || len(m.body) < ndMsgLen {
		return neigh{}, fmt.Errorf("netlink message type %d of %d bytes is not a neighbour", m.typ, len(m.body))
	}
	n := neigh{
		index: int32(binary.NativeEndian.Uint32(m.body[4:8])),
		state: binary.NativeEndian.Uint16(m.body[8:10]),
	}
	attrs, err := parseAttrs(m.body[ndMsgLen:])
	if err != nil {
		return neigh{}, fmt.Errorf("neighbour on link %d: %w", n.index, err)
	}
	ip, ok := netip.AddrFromSlice(attrs[ndaDst])
	if !ok {
		return neigh{}, fmt.Errorf("neighbour on link %d: destination is %d bytes long", n.index, len(attrs[ndaDst]))
	}
	n.ip = ip
	n.mac = macString(attrs[ndaLladdr])
	return n, nil
}

// stateName names a neighbour state as "ip neigh" does.
func stateName(state uint16) string {
	var names []string
	for _, s := range nudStates {
		if state&s.bit != 0 {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, ",")
}

// macString formats a hardware address, or returns "" for one that is
// empty or all zeros.
func macString(b []byte) string {
	zero := true
	for _, c := range b {
		if c != 0 {
			zero = false
			break
		}
	}
	if zero {
		return ""
	}
	return net.HardwareAddr(b).String()
}
