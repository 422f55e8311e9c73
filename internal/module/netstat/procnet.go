package netstat

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxProcLine bounds a line of a /proc/net table.
const maxProcLine = 4096

// tcpStates names the states of /proc/net/tcp (include/net/tcp_states.h).
var tcpStates = map[uint64]string{
	0x01: "ESTABLISHED", 0x02: "SYN_SENT", 0x03: "SYN_RECV", 0x04: "FIN_WAIT1",
	0x05: "FIN_WAIT2", 0x06: "TIME_WAIT", 0x07: "CLOSE", 0x08: "CLOSE_WAIT",
	0x09: "LAST_ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "NEW_SYN_RECV",
}

// parseSockets parses a /proc/net/{tcp,tcp6,udp,udp6} table, whose
// protocol is proto, calling fn for each socket. A malformed line is an
// error naming it.
func parseSockets(rd io.Reader, proto string, fn func(socket)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 512), maxProcLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if !strings.Contains(text, "local_address") {
				return fmt.Errorf("%s table header %q is not a /proc/net socket table header", proto, trim(text))
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		s, err := parseSocketLine(text, proto)
		if err != nil {
			return fmt.Errorf("%s table line %d %q: %w", proto, line, trim(text), err)
		}
		fn(s)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s table line %d: %w", proto, line+1, err)
	}
	return nil
}

// parseSocketLine parses one line of a socket table:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
func parseSocketLine(text, proto string) (socket, error) {
	f := strings.Fields(text)
	if len(f) < 10 {
		return socket{}, fmt.Errorf("%d fields, want at least 10", len(f))
	}
	v6 := strings.HasSuffix(proto, "6")
	local, err := parseHexAddrPort(f[1], v6)
	if err != nil {
		return socket{}, fmt.Errorf("local address: %w", err)
	}
	remote, err := parseHexAddrPort(f[2], v6)
	if err != nil {
		return socket{}, fmt.Errorf("remote address: %w", err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return socket{}, fmt.Errorf("state %q is not a hexadecimal byte", f[3])
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return socket{}, fmt.Errorf("inode %q is not a number", f[9])
	}
	s := socket{proto: proto, local: local, remote: remote, inode: inode}
	switch {
	case strings.HasPrefix(proto, "udp") && st == 0x07:
		s.state = "UNCONN"
	case tcpStates[st] != "":
		s.state = tcpStates[st]
	default:
		s.state = "0x" + strings.ToUpper(strconv.FormatUint(st, 16))
	}
	return s, nil
}

// parseHexAddrPort parses the kernel's "0100007F:0016" form: the address
// as 32-bit words in host byte order (one for IPv4, four for IPv6), the
// port in hexadecimal.
func parseHexAddrPort(s string, v6 bool) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q has no port", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q is not 16-bit hexadecimal", hexPort)
	}
	words := 1
	if v6 {
		words = 4
	}
	if len(hexAddr) != 8*words {
		return netip.AddrPort{}, fmt.Errorf("address %q is %d digits long, want %d", hexAddr, len(hexAddr), 8*words)
	}
	b := make([]byte, 4*words)
	for i := range words {
		w, err := strconv.ParseUint(hexAddr[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q is not hexadecimal", hexAddr)
		}
		binary.NativeEndian.PutUint32(b[4*i:], uint32(w))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// ARP entry flags (include/uapi/linux/if_arp.h).
const (
	atfComplete  = 0x02
	atfPermanent = 0x04
)

// parseARP parses /proc/net/arp, calling fn for each complete entry;
// incomplete entries (no MAC yet) are skipped.
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	192.0.2.1        0x1         0x2         52:54:00:12:34:56     *        eth0
func parseARP(rd io.Reader, fn func(neighbour)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 512), maxProcLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if !strings.HasPrefix(text, "IP address") {
				return fmt.Errorf("arp table header %q is not /proc/net/arp's", trim(text))
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 6 {
			return fmt.Errorf("arp table line %d %q: %d fields, want 6", line, trim(text), len(f))
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || !ip.Is4() {
			return fmt.Errorf("arp table line %d: %q is not an IPv4 address", line, trim(f[0]))
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		if err != nil {
			return fmt.Errorf("arp table line %d: flags %q are not hexadecimal", line, trim(f[2]))
		}
		if flags&atfComplete == 0 {
			continue
		}
		// Hardware addresses of other lengths than Ethernet's, InfiniBand's
		// and EUI-64's are kept as the kernel writes them.
		mac := strings.ToLower(f[3])
		if hw, err := net.ParseMAC(f[3]); err == nil {
			mac = hw.String()
		}
		state := "COMPLETE"
		if flags&atfPermanent != 0 {
			state = "PERMANENT"
		}
		fn(neighbour{ip: ip, mac: mac, iface: f[5], state: state})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("arp table line %d: %w", line+1, err)
	}
	return nil
}

// trim shortens s for an error message.
func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
