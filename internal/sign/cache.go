package sign

import (
	"crypto/sha256"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// maxVerified bounds a keyring's cache of verified signatures; when it is
// full it starts again empty.
const maxVerified = 4096

// verifiedKey names one successful verification: the SHA-256 of the signed
// data and the exact armored signature.
type verifiedKey struct {
	data [sha256.Size]byte
	sig  string
}

// verified is what a successful verification found: the parsed signature
// and the key that made it. Only the checks that depend on the time (key,
// subkey and signature validity, revocation) are run again on a hit.
type verified struct {
	sig  *packet.Signature
	cand candidate
}

// verifyCache remembers, for one keyring, the signatures that verified
// over data, so that the many agents of a fleet simulator checking the same
// action skip the public-key operation after the first. It can only answer
// for a signature that verified before, byte for byte over the same data
// with a key of this keyring: a bad signature is never cached, and a hit
// still runs the time-dependent checks.
type verifyCache struct {
	mu sync.Mutex
	m  map[verifiedKey]verified
}

// get returns the verification of sig over data, if one succeeded before.
func (c *verifyCache) get(k verifiedKey) (verified, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// put remembers a successful verification.
func (c *verifyCache) put(k verifiedKey, v verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[verifiedKey]verified)
	}
	c.m[k] = v
}

// reset forgets every verification, for a keyring that changed.
func (c *verifyCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
