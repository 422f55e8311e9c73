package relay

import (
	"math/rand/v2"
	"time"
)

// Reconnect backoff of agents and hubs on every relay: the n-th wait of a
// reconnect cycle is drawn uniformly from [d/2, d] with
// d = ReconnectBase·2^(n-1), at most ReconnectMax, so that thousands of
// agents losing the relay at once do not come back at once.
const (
	ReconnectBase = 500 * time.Millisecond
	ReconnectMax  = 30 * time.Second
)

// ReconnectDelay returns the wait before the attempts-th try of a reconnect
// cycle (attempts starts at 1). The jitter needs no secrecy, so math/rand.
func ReconnectDelay(attempts int) time.Duration {
	d := ReconnectMax
	if attempts < 1 {
		attempts = 1
	}
	if attempts < 16 {
		d = min(ReconnectBase<<(attempts-1), ReconnectMax)
	}
	return d/2 + rand.N(d/2+1)
}
