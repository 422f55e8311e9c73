package agent

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// maxAddresses bounds the addresses reported in a heartbeat.
const maxAddresses = 256

// osIdent returns the distribution and version from an os-release file:
// PRETTY_NAME, or NAME and VERSION_ID.
func osIdent(data []byte) string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		vals[k] = v
	}
	if p := vals["PRETTY_NAME"]; p != "" {
		return limitString(p, 256)
	}
	return limitString(strings.TrimSpace(vals["NAME"]+" "+vals["VERSION_ID"]), 256)
}

// hostIdent reads the distribution ident of this host.
func hostIdent() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := readFileLimited(p, 64<<10); err == nil {
			if id := osIdent(b); id != "" {
				return id
			}
		}
	}
	return ""
}

// initSystem names the host's init system, as MIG reported it: systemd,
// upstart, sysvinit, launchd or windows.
func initSystem() string {
	switch runtime.GOOS {
	case "darwin":
		return "launchd"
	case "windows":
		return "windows"
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		return "systemd"
	}
	if comm, err := os.ReadFile("/proc/1/comm"); err == nil && strings.TrimSpace(string(comm)) == "systemd" {
		return "systemd"
	}
	if _, err := os.Stat("/sbin/initctl"); err == nil {
		if out, err := readFileLimited("/sbin/initctl", 8<<20); err == nil && bytes.Contains(out, []byte("upstart")) {
			return "upstart"
		}
	}
	return "sysvinit"
}

// hostAddresses returns the addresses (CIDR form) of the interfaces that are
// up, loopback excluded.
func hostAddresses() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if len(out) >= maxAddresses {
				return out
			}
			out = append(out, a.String())
		}
	}
	return out
}

// limitString cuts s to at most n bytes of valid UTF-8.
func limitString(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
