package sign

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Size limits on key material, checked before anything is parsed.
const (
	// MaxKeyringSize bounds what ReadKeyring reads.
	MaxKeyringSize = 16 << 20
	// MaxKeySize bounds one armored key given to Add, ParsePublicKey or
	// NewKeySigner.
	MaxKeySize = 1 << 20
	// MinRSABits is the smallest RSA modulus accepted for signing.
	MinRSABits = 2048
)

// ErrBadKey is wrapped by every error about a key that cannot be read or
// cannot be used: malformed, private where a public key is expected, not
// version 4, too weak, revoked or expired.
var ErrBadKey = errors.New("bad OpenPGP key")

// Keyring is a set of OpenPGP version 4 public keys, each known by the
// fingerprint of its primary key. It is the trust anchor of whoever holds it:
// an agent's keyring decides whose signatures the agent accepts. The zero
// Keyring is empty and ready to use; a Keyring is safe for concurrent use.
type Keyring struct {
	mu   sync.RWMutex
	keys map[string]*openpgp.Entity // by primary key fingerprint
	// verified caches successful verifications made with this keyring.
	verified verifyCache
}

// ReadKeyring reads a keyring: one or more public keys, either ASCII-armored
// (one block holding several keys, or several blocks concatenated, as
// `gpg --armor --export` writes them) or binary (`gpg --export`). Every key
// must parse and be a version 4 public key; a private key, a duplicate key or
// anything else in the input is an error, so a damaged keyring file is
// noticed rather than partly loaded.
func ReadKeyring(r io.Reader) (*Keyring, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	if len(data) > MaxKeyringSize {
		return nil, fmt.Errorf("%w: keyring is larger than %d bytes", ErrBadKey, MaxKeyringSize)
	}
	entities, err := parseKeys(data, armorPublicKey)
	if err != nil {
		return nil, err
	}
	k := &Keyring{}
	for _, e := range entities {
		if err := checkPublicEntity(e); err != nil {
			return nil, err
		}
		if err := k.add(e); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Add adds one armored public key to the keyring and returns its
// fingerprint. It refuses anything but exactly one version 4 public key, and a
// key already in the keyring. It does not require the key to be usable for
// signing today: a revoked or expired key can be added and simply verifies
// nothing (use ParsePublicKey to check a key that is about to be trusted).
func (k *Keyring) Add(armored string) (fingerprint string, err error) {
	e, err := parseOnePublicKey(armored)
	if err != nil {
		return "", err
	}
	if err := k.add(e); err != nil {
		return "", err
	}
	return fingerprintOf(e.PrimaryKey), nil
}

// add adds a checked entity.
func (k *Keyring) add(e *openpgp.Entity) error {
	fp := fingerprintOf(e.PrimaryKey)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]*openpgp.Entity{}
	}
	if _, ok := k.keys[fp]; ok {
		return fmt.Errorf("%w: key %s is already in the keyring", ErrBadKey, fp)
	}
	k.keys[fp] = e
	k.verified.reset()
	return nil
}

// Fingerprints returns the fingerprints of the keyring's primary keys:
// upper-case hex, 40 characters for version 4 keys, sorted.
func (k *Keyring) Fingerprints() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, 0, len(k.keys))
	for fp := range k.keys {
		out = append(out, fp)
	}
	slices.Sort(out)
	return out
}

// Len returns the number of keys in the keyring.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// ParsePublicKey checks that armored is exactly one version 4 OpenPGP public
// key that can sign today — not revoked, not expired, with a primary key or
// subkey allowed to sign, of an accepted algorithm and size — and returns its
// fingerprint. The server calls it before trusting an investigator's key.
func ParsePublicKey(armored string) (fingerprint string, err error) {
	e, err := parseOnePublicKey(armored)
	if err != nil {
		return "", err
	}
	fp := fingerprintOf(e.PrimaryKey)
	key, ok := e.SigningKey(time.Now())
	if !ok {
		return "", fmt.Errorf("%w: key %s has no signing key that is valid now (revoked, expired, or not allowed to sign)", ErrBadKey, fp)
	}
	if err := checkKeyAlgorithm(key.PublicKey); err != nil {
		return "", fmt.Errorf("key %s: %w", fp, err)
	}
	return fp, nil
}

// parseOnePublicKey parses exactly one public key.
func parseOnePublicKey(armored string) (*openpgp.Entity, error) {
	if len(armored) > MaxKeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, more than the limit of %d", ErrBadKey, len(armored), MaxKeySize)
	}
	entities, err := parseKeys([]byte(armored), armorPublicKey)
	if err != nil {
		return nil, err
	}
	if len(entities) != 1 {
		fps := make([]string, len(entities))
		for i, e := range entities {
			fps[i] = fingerprintOf(e.PrimaryKey)
		}
		return nil, fmt.Errorf("%w: want exactly one key, got %d (%s)", ErrBadKey, len(entities), strings.Join(fps, ", "))
	}
	if err := checkPublicEntity(entities[0]); err != nil {
		return nil, err
	}
	return entities[0], nil
}

// parseKeys parses armored blocks of type wantType, or binary packets, into
// entities. Any packet that does not belong to a key is an error.
func parseKeys(data []byte, wantType string) ([]*openpgp.Entity, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: no key found", ErrBadKey)
	}
	var bodies [][]byte
	if trimmed[0]&0x80 != 0 {
		bodies = [][]byte{data}
	} else {
		blocks, err := decodeArmor(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		for _, b := range blocks {
			if b.typ != wantType {
				return nil, fmt.Errorf("%w: armored block is %q, want %q", ErrBadKey, b.typ, wantType)
			}
			bodies = append(bodies, b.body)
		}
	}
	var entities []*openpgp.Entity
	for _, body := range bodies {
		packets := packet.NewReader(bytes.NewReader(body))
		for {
			e, err := openpgp.ReadEntity(packets)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%w: key %d: %w", ErrBadKey, len(entities)+1, err)
			}
			entities = append(entities, e)
		}
	}
	if len(entities) == 0 {
		return nil, fmt.Errorf("%w: no key found", ErrBadKey)
	}
	return entities, nil
}

// checkPublicEntity checks what every key in a keyring must be: a version 4
// public key (no secret material) with a valid self-signature.
func checkPublicEntity(e *openpgp.Entity) error {
	fp := fingerprintOf(e.PrimaryKey)
	if e.PrivateKey != nil {
		return fmt.Errorf("%w: key %s is a private key; keyrings hold public keys only", ErrBadKey, fp)
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil {
			return fmt.Errorf("%w: key %s holds a private subkey; keyrings hold public keys only", ErrBadKey, fp)
		}
	}
	return checkEntity(e)
}

// checkEntity checks a key's version and that it has a valid self-signature.
func checkEntity(e *openpgp.Entity) error {
	fp := fingerprintOf(e.PrimaryKey)
	if e.PrimaryKey.Version != 4 {
		return fmt.Errorf("%w: key %s is a version %d key; only version 4 keys are supported", ErrBadKey, fp, e.PrimaryKey.Version)
	}
	if ps, _ := e.PrimarySelfSignature(); ps == nil {
		return fmt.Errorf("%w: key %s has no user ID with a valid self-signature", ErrBadKey, fp)
	}
	return nil
}

// checkKeyAlgorithm refuses signing keys of algorithms or sizes MIG does not
// accept.
func checkKeyAlgorithm(pk *packet.PublicKey) error {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		rk, ok := pk.PublicKey.(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < MinRSABits {
			bits := 0
			if ok {
				bits = rk.N.BitLen()
			}
			return fmt.Errorf("%w: RSA key %X has %d bits, fewer than %d", ErrBadKey, pk.Fingerprint, bits, MinRSABits)
		}
		return nil
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519, packet.PubKeyAlgoEd448, packet.PubKeyAlgoECDSA:
		return nil
	}
	return fmt.Errorf("%w: key %X uses public key algorithm %d, which MIG does not accept for signing", ErrBadKey, pk.Fingerprint, pk.PubKeyAlgo)
}

// fingerprintOf returns a key's fingerprint in upper-case hex.
func fingerprintOf(pk *packet.PublicKey) string {
	return fmt.Sprintf("%X", pk.Fingerprint)
}

// candidate is a key of the keyring that may have made a signature.
type candidate struct {
	entity *openpgp.Entity
	key    *packet.PublicKey
	sub    *openpgp.Subkey // nil when key is the primary key
}

// candidates returns the primary keys and subkeys whose key ID is id and,
// when fingerprint is not nil, whose fingerprint is fingerprint.
func (k *Keyring) candidates(id uint64, fingerprint []byte) []candidate {
	k.mu.RLock()
	defer k.mu.RUnlock()
	match := func(pk *packet.PublicKey) bool {
		return pk.KeyId == id && (fingerprint == nil || bytes.Equal(pk.Fingerprint, fingerprint))
	}
	var out []candidate
	for _, e := range k.keys {
		if match(e.PrimaryKey) {
			out = append(out, candidate{entity: e, key: e.PrimaryKey})
		}
		for i := range e.Subkeys {
			if match(e.Subkeys[i].PublicKey) {
				out = append(out, candidate{entity: e, key: e.Subkeys[i].PublicKey, sub: &e.Subkeys[i]})
			}
		}
	}
	return out
}
