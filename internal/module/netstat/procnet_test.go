package netstat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hexAddrPort writes an address and port the way the kernel does in
// /proc/net/tcp: 32-bit words in host byte order.
func hexAddrPort(ap netip.AddrPort) string {
	b := ap.Addr().AsSlice()
	var s strings.Builder
	for i := 0; i < len(b); i += 4 {
		fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[i:i+4]))
	}
	fmt.Fprintf(&s, ":%04X", ap.Port())
	return s.String()
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func socketLine(sl int, local, remote string, st string, inode uint64) string {
	la, ra := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
	return fmt.Sprintf("  %d: %s %s %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n",
		sl, hexAddrPort(la), hexAddrPort(ra), st, inode)
}

func TestParseSockets(t *testing.T) {
	tests := []struct {
		name  string
		proto string
		table string
		want  []socket
	}{
		{
			name:  "tcp",
			proto: "tcp",
			table: tcpHeader +
				socketLine(0, "127.0.0.1:22", "0.0.0.0:0", "0A", 1001) +
				socketLine(1, "10.1.2.3:51234", "13.37.66.66:443", "01", 1002) +
				socketLine(2, "10.1.2.3:51235", "13.37.66.66:443", "06", 0) +
				"\n",
			want: []socket{
				{proto: "tcp", local: netip.MustParseAddrPort("127.0.0.1:22"), remote: netip.MustParseAddrPort("0.0.0.0:0"), state: "LISTEN", inode: 1001},
				{proto: "tcp", local: netip.MustParseAddrPort("10.1.2.3:51234"), remote: netip.MustParseAddrPort("13.37.66.66:443"), state: "ESTABLISHED", inode: 1002},
				{proto: "tcp", local: netip.MustParseAddrPort("10.1.2.3:51235"), remote: netip.MustParseAddrPort("13.37.66.66:443"), state: "TIME_WAIT"},
			},
		},
		{
			name:  "tcp6 with a mapped address",
			proto: "tcp6",
			table: tcpHeader +
				socketLine(0, "[::]:8080", "[::]:0", "0A", 7) +
				socketLine(1, "[::ffff:10.0.0.1]:8080", "[::ffff:13.37.66.66]:40000", "01", 8) +
				socketLine(2, "[2001:db8::1]:443", "[2001:db8::2]:50000", "08", 9),
			want: []socket{
				{proto: "tcp6", local: netip.MustParseAddrPort("[::]:8080"), remote: netip.MustParseAddrPort("[::]:0"), state: "LISTEN", inode: 7},
				{proto: "tcp6", local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:8080"), remote: netip.MustParseAddrPort("[::ffff:13.37.66.66]:40000"), state: "ESTABLISHED", inode: 8},
				{proto: "tcp6", local: netip.MustParseAddrPort("[2001:db8::1]:443"), remote: netip.MustParseAddrPort("[2001:db8::2]:50000"), state: "CLOSE_WAIT", inode: 9},
			},
		},
		{
			name:  "udp",
			proto: "udp",
			table: "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
				socketLine(0, "0.0.0.0:53", "0.0.0.0:0", "07", 20) +
				socketLine(1, "10.0.0.1:5353", "8.8.8.8:53", "01", 21) +
				socketLine(2, "10.0.0.1:5354", "8.8.8.8:53", "FE", 22),
			want: []socket{
				{proto: "udp", local: netip.MustParseAddrPort("0.0.0.0:53"), remote: netip.MustParseAddrPort("0.0.0.0:0"), state: "UNCONN", inode: 20},
				{proto: "udp", local: netip.MustParseAddrPort("10.0.0.1:5353"), remote: netip.MustParseAddrPort("8.8.8.8:53"), state: "ESTABLISHED", inode: 21},
				{proto: "udp", local: netip.MustParseAddrPort("10.0.0.1:5354"), remote: netip.MustParseAddrPort("8.8.8.8:53"), state: "0xFE", inode: 22},
			},
		},
		{name: "header only", proto: "udp6", table: tcpHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []socket
			if err := parseSockets(strings.NewReader(tt.table), tt.proto, func(s socket) { got = append(got, s) }); err != nil {
				t.Fatalf("parseSockets: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(socket{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("parseSockets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSocketsErrors(t *testing.T) {
	good := socketLine(0, "127.0.0.1:22", "0.0.0.0:0", "0A", 1)
	tests := []struct {
		name, proto, table, want string
	}{
		{"no header", "tcp", good, "header"},
		{"short line", "tcp", tcpHeader + "  0: 0100007F:0016\n", "fields"},
		{"v6 address in v4 table", "tcp", tcpHeader + socketLine(0, "[::1]:22", "[::]:0", "0A", 1), "digits long"},
		{"bad port", "tcp", tcpHeader + strings.Replace(good, ":0016", ":XYZW", 1), `"XYZW"`},
		{"no port", "tcp", tcpHeader + strings.Replace(good, ":0016", "", 1), "no port"},
		{"bad state", "tcp", tcpHeader + strings.Replace(good, " 0A ", " ZZ ", 1), `"ZZ"`},
		{"bad inode", "tcp", tcpHeader + strings.Replace(good, " 1 1 ", " x 1 ", 1), `"x"`},
		{"huge line", "tcp", tcpHeader + strings.Repeat("a", maxProcLine+1) + "\n", "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parseSockets(strings.NewReader(tt.table), tt.proto, func(socket) {})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseSockets error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseSockets(f *testing.F) {
	f.Add("tcp", tcpHeader+socketLine(0, "127.0.0.1:22", "0.0.0.0:0", "0A", 1))
	f.Add("tcp6", tcpHeader+socketLine(0, "[::ffff:10.0.0.1]:8080", "[::1]:1", "01", 2))
	f.Add("udp", tcpHeader+"  0: 00000000:0035 00000000:0000 07 0 0 0 0 0 0 0\n")
	f.Add("udp6", "junk\n")
	f.Fuzz(func(t *testing.T, proto, table string) {
		_ = parseSockets(strings.NewReader(table), proto, func(s socket) {
			if !s.local.IsValid() || !s.remote.IsValid() || s.state == "" {
				t.Errorf("parsed an incomplete socket %+v", s)
			}
		})
	})
}

const arpHeader = "IP address       HW type     Flags       HW address            Mask     Device\n"

func TestParseARP(t *testing.T) {
	table := arpHeader +
		"192.0.2.1        0x1         0x2         52:54:00:12:34:56     *        eth0\n" +
		"192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0\n" +
		"10.9.8.7         0x1         0x6         8C:70:5A:C8:BE:50     *        br0\n" +
		"10.9.8.8         0x301       0x2         0a:0b:0c:0d           *        tun0\n"
	var got []neighbour
	if err := parseARP(strings.NewReader(table), func(n neighbour) { got = append(got, n) }); err != nil {
		t.Fatalf("parseARP: %v", err)
	}
	want := []neighbour{
		{ip: netip.MustParseAddr("192.0.2.1"), mac: "52:54:00:12:34:56", iface: "eth0", state: "COMPLETE"},
		{ip: netip.MustParseAddr("10.9.8.7"), mac: "8c:70:5a:c8:be:50", iface: "br0", state: "PERMANENT"},
		{ip: netip.MustParseAddr("10.9.8.8"), mac: "0a:0b:0c:0d", iface: "tun0", state: "COMPLETE"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(neighbour{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("parseARP (-want +got):\n%s", diff)
	}
	for _, bad := range []struct{ table, want string }{
		{"192.0.2.1 0x1 0x2 52:54:00:12:34:56 * eth0\n", "header"},
		{arpHeader + "192.0.2.1 0x1 0x2\n", "fields"},
		{arpHeader + "fe80::1 0x1 0x2 52:54:00:12:34:56 * eth0\n", `"fe80::1"`},
		{arpHeader + "192.0.2.1 0x1 0xZZ 52:54:00:12:34:56 * eth0\n", `"0xZZ"`},
	} {
		if err := parseARP(strings.NewReader(bad.table), func(neighbour) {}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseARP(%q) error = %v, want one containing %q", bad.table, err, bad.want)
		}
	}
}

func FuzzParseARP(f *testing.F) {
	f.Add(arpHeader + "192.0.2.1        0x1         0x2         52:54:00:12:34:56     *        eth0\n")
	f.Add(arpHeader + "10.0.0.1 0x1 0x6 zz * x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, table string) {
		_ = parseARP(strings.NewReader(table), func(n neighbour) {
			if !n.ip.Is4() || n.mac == "" || n.iface == "" {
				t.Errorf("parsed an incomplete neighbour %+v", n)
			}
		})
	})
}
