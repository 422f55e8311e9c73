package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed API key authentications are counted in fixed windows of
// apiKeyFailureWindow, per source (the client's address, or its /64 for
// IPv6) and per key ID (only for keys that exist: someone trying secrets
// for a known key). A failure past maxAPIKeyFailures in either count is
// answered 429 until the window ends. Successes are never counted or
// refused: the key is checked before the counts, so a valid key works
// while an attacker floods bad ones from the same address, or through the
// same load balancer.
//
// The secret is 256 random bits, so the limit does not stand between an
// attacker and a key; it tells a misconfigured client or a scanner to back
// off and marks the event in the log once per window and source.
//
// Memory is bounded: each table holds at most maxFailureEntries entries
// and is emptied at each window; sources or key IDs past the bound share
// one count, "*", so spraying addresses or IDs costs no more memory and
// only makes the sprayer's own failures 429 sooner.

// Bounds of the API key failure limiter.
const (
	// maxAPIKeyFailures is how many failed API key authentications a
	// source, or a key ID, may make in apiKeyFailureWindow before its
	// further failures are answered 429 until the window ends.
	maxAPIKeyFailures   = 30
	apiKeyFailureWindow = time.Minute
	// maxFailureEntries bounds the sources, and separately the key IDs,
	// tracked in one window.
	maxFailureEntries = 10000
	// overflowEntry is the shared count of entries past the bound.
	overflowEntry = "*"
)

// failLimiter counts failed API key authentications per source and per
// key ID in fixed windows.
type failLimiter struct {
	mu      sync.Mutex
	start   time.Time
	sources map[string]int
	keys    map[string]int
}

func (l *failLimiter) reset(now time.Time) {
	if l.sources == nil || now.Sub(l.start) >= apiKeyFailureWindow || now.Before(l.start) {
		l.start, l.sources, l.keys = now, map[string]int{}, map[string]int{}
	}
}

// count adds one to m[k], or to the overflow entry when m is full, and
// returns the new count.
func count(m map[string]int, k string) int {
	if _, ok := m[k]; !ok && len(m) >= maxFailureEntries {
		k = overflowEntry
	}
	m[k]++
	return m[k]
}

// fail counts a failure from source for keyID (empty when the key is
// unknown) and, when either count is over the limit, returns what is
// limited, for the error message; "" means the failure is answered as
// usual.
func (l *failLimiter) fail(source, keyID string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(now)
	if n := count(l.sources, source); n > maxAPIKeyFailures {
		return "from " + source
	}
	if keyID != "" {
		if n := count(l.keys, keyID); n > maxAPIKeyFailures {
			return "for API key " + keyID
		}
	}
	return ""
}

// clientSource is the source of a request for the failure counts: the
// client's address (clientAddr) with IPv6 addresses reduced to their /64,
// which one host usually holds whole.
func (a *API) clientSource(r *http.Request) string {
	addr, ok := clientAddr(r, a.cfg.TrustedProxies)
	if !ok {
		return r.RemoteAddr
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// clientAddr returns the address of the client a request comes from. It is
// the direct peer unless the peer is one of trusted (the configured
// proxies, api.trustedproxies): then X-Forwarded-For is read from the right,
// each trusted proxy's entry skipped, and the first entry that is not a
// trusted proxy is the client. An entry that does not parse ends the walk
// at the proxy that wrote it. With no trusted proxies (the default) the
// header is ignored: any client can write it. ok is false when the peer's
// own address does not parse (not a TCP connection).
func clientAddr(r *http.Request, trusted []netip.Prefix) (addr netip.Addr, ok bool) {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if !isTrusted(peer, trusted) {
		return peer, true
	}
	hops := r.Header.Values("X-Forwarded-For")
	cur := peer
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			hop, ok := parseHop(e)
			if !ok {
				return cur, true
			}
			if !isTrusted(hop, trusted) {
				return hop, true
			}
			cur = hop
		}
	}
	return cur, true
}

// parseHop parses an address as found in RemoteAddr or X-Forwarded-For:
// "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80". IPv4-mapped
// IPv6 addresses become IPv4; zones are dropped.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies parses api.trustedproxies: IP addresses ("10.0.0.5",
// "2001:db8::5") or networks ("10.0.0.0/8").
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("trusted proxy %d %q: write IPv4 networks as IPv4", i, s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %d %q: neither an IP address nor a network like 10.0.0.0/8", i, s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
