package sign

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/migplatform/mig/internal/action"
)

// ErrAlreadySigned is returned by SignAction when the signer's key already
// signed the action.
var ErrAlreadySigned = errors.New("action already signed by this key")

// Signer makes armored OpenPGP detached signatures with one investigator's
// key. Implementations run on the investigator's machine.
type Signer interface {
	// Sign returns an armored detached signature over data.
	Sign(data []byte) (armoredSig string, err error)
	// Fingerprint returns the fingerprint of the signing key's primary key,
	// upper-case hex.
	Fingerprint() string
}

// keySigner signs with a private key held in memory.
type keySigner struct {
	entity      *openpgp.Entity
	fingerprint string
}

// NewKeySigner returns a Signer for an armored (or binary) OpenPGP version 4
// private key, decrypting it with passphrase if it is protected. The key
// must be able to sign now, with its primary key or a signing subkey.
func NewKeySigner(armoredPrivate []byte, passphrase []byte) (Signer, error) {
	if len(armoredPrivate) > MaxKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, more than the limit of %d", ErrBadKey, len(armoredPrivate), MaxKeySize)
	}
	entities, err := parseKeys(armoredPrivate, armorPrivateKey)
	if err != nil {
		return nil, err
	}
	if len(entities) != 1 {
		return nil, fmt.Errorf("%w: want exactly one private key, got %d keys", ErrBadKey, len(entities))
	}
	e := entities[0]
	fp := fingerprintOf(e.PrimaryKey)
	if e.PrivateKey == nil {
		return nil, fmt.Errorf("%w: key %s is a public key, want a private key", ErrBadKey, fp)
	}
	if err := checkEntity(e); err != nil {
		return nil, err
	}
	if err := e.DecryptPrivateKeys(passphrase); err != nil {
		return nil, fmt.Errorf("%w: decrypting private key %s: %w", ErrBadKey, fp, err)
	}
	key, ok := e.SigningKey(time.Now())
	if !ok {
		return nil, fmt.Errorf("%w: key %s has no signing key that is valid now", ErrBadKey, fp)
	}
	if key.PrivateKey == nil || key.PrivateKey.Dummy() || key.PrivateKey.Encrypted {
		return nil, fmt.Errorf("%w: key %s: the secret part of signing key %X is not available", ErrBadKey, fp, key.PublicKey.Fingerprint)
	}
	if err := checkKeyAlgorithm(key.PublicKey); err != nil {
		return nil, fmt.Errorf("key %s: %w", fp, err)
	}
	return &keySigner{entity: e, fingerprint: fp}, nil
}

// signConfig is the configuration of every signature this package makes.
func signConfig() *packet.Config {
	return &packet.Config{DefaultHash: crypto.SHA512}
}

// Sign implements Signer.
func (s *keySigner) Sign(data []byte) (string, error) {
	var b strings.Builder
	if err := openpgp.ArmoredDetachSign(&b, s.entity, bytes.NewReader(data), signConfig()); err != nil {
		return "", fmt.Errorf("signing with key %s: %w", s.fingerprint, err)
	}
	return b.String(), nil
}

// Fingerprint implements Signer.
func (s *keySigner) Fingerprint() string { return s.fingerprint }

// GenerateKey makes a new OpenPGP version 4 Ed25519 key with one user ID,
// "name <email>", allowed to sign and certify, without a passphrase and
// without expiry, and returns it armored, private and public, with its
// fingerprint. GnuPG 2.2 and later import and use it. It is meant for the
// development investigator and for tests; real investigators make their keys
// with their own tools.
func GenerateKey(name, email string) (armoredPrivate, armoredPublic []byte, fingerprint string, err error) {
	if strings.TrimSpace(name) == "" {
		return nil, nil, "", fmt.Errorf("%w: key name is empty", ErrBadKey)
	}
	if strings.ContainsAny(name+email, "()<>\x00") {
		return nil, nil, "", fmt.Errorf("%w: key name %q or email %q holds one of ()<> or NUL", ErrBadKey, name, email)
	}
	cfg := &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA, // the version 4 Ed25519 that GnuPG 2.2 knows
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA512,
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("generating key for %q: %w", name, err)
	}
	// NewEntity adds an encryption subkey; MIG keys only sign.
	e.Subkeys = nil

	var priv, pub bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, nil, "", err
	}
	if err := e.SerializePrivate(w, cfg); err != nil {
		return nil, nil, "", fmt.Errorf("serializing private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, nil, "", err
	}
	priv.WriteByte('\n')
	w, err = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, nil, "", err
	}
	if err := e.Serialize(w); err != nil {
		return nil, nil, "", fmt.Errorf("serializing public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, nil, "", err
	}
	pub.WriteByte('\n')
	return priv.Bytes(), pub.Bytes(), fingerprintOf(e.PrimaryKey), nil
}

// SignAction signs a.Encoding() with s and appends the armored signature to
// a.PGPSignatures. The action must validate. It refuses to sign an action
// that the same key already signed (ErrAlreadySigned), since a second
// signature by one key adds nothing: one key counts once. It checks and
// encodes the action once (action.Action.Check); a caller that checked the
// action already uses SignChecked.
func SignAction(a *action.Action, s Signer) error {
	c, err := a.Check()
	if err != nil {
		return fmt.Errorf("signing action %d: %w", a.ID, err)
	}
	signed, err := SignChecked(c, s)
	if err != nil {
		return err
	}
	a.PGPSignatures = signed.PGPSignatures
	return nil
}

// SignChecked signs the encoding of a checked action with s and returns a
// copy of that action with the armored signature appended: what is signed
// is always the action returned, never bytes computed from an action that
// changed since. Its errors are SignAction's.
func SignChecked(c *action.Checked, s Signer) (*action.Action, error) {
	id := c.ID()
	sigs := c.Signatures()
	if len(sigs) >= action.MaxSignatures {
		return nil, fmt.Errorf("signing action %d: %w: it already has %d signatures, the limit", id, action.ErrInvalid, len(sigs))
	}
	sig, err := s.Sign(c.Encoding())
	if err != nil {
		return nil, fmt.Errorf("signing action %d: %w", id, err)
	}
	issuer, err := issuerOf(sig)
	if err != nil {
		return nil, fmt.Errorf("signing action %d with key %s: the signer made an unusable signature: %w", id, s.Fingerprint(), err)
	}
	primary, primaryOK := keyIDOfFingerprint(s.Fingerprint())
	for i, old := range sigs {
		oid, err := issuerOf(old)
		if err != nil {
			return nil, fmt.Errorf("signing action %d: existing signature %d: %w", id, i+1, err)
		}
		if oid == issuer || (primaryOK && oid == primary) {
			return nil, fmt.Errorf("signing action %d: %w: key %s made signature %d", id, ErrAlreadySigned, s.Fingerprint(), i+1)
		}
	}
	a := c.Action()
	a.PGPSignatures = append(a.PGPSignatures, sig)
	return a, nil
}

// SignData signs data, the signed encoding of some other document (what
// names it in errors, e.g. "manifest prod/7"), with s and returns the
// armored signature. Like SignChecked it refuses to sign when one of the
// existing signatures was made by the same key (ErrAlreadySigned), and
// refuses a signature the signer made in a form verification would refuse.
func SignData(what string, data []byte, existing []string, s Signer) (string, error) {
	primary, primaryOK := keyIDOfFingerprint(s.Fingerprint())
	for i, old := range existing {
		oid, err := issuerOf(old)
		if err != nil {
			return "", fmt.Errorf("signing %s: existing signature %d: %w", what, i+1, err)
		}
		if primaryOK && oid == primary {
			return "", fmt.Errorf("signing %s: %w: key %s made signature %d", what, ErrAlreadySigned, s.Fingerprint(), i+1)
		}
	}
	sig, err := s.Sign(data)
	if err != nil {
		return "", fmt.Errorf("signing %s: %w", what, err)
	}
	issuer, err := issuerOf(sig)
	if err != nil {
		return "", fmt.Errorf("signing %s with key %s: the signer made an unusable signature: %w", what, s.Fingerprint(), err)
	}
	for i, old := range existing {
		if oid, _ := issuerOf(old); oid == issuer {
			return "", fmt.Errorf("signing %s: %w: key %s made signature %d", what, ErrAlreadySigned, s.Fingerprint(), i+1)
		}
	}
	return sig, nil
}

// keyIDOfFingerprint returns the key ID of a version 4 fingerprint in hex.
func keyIDOfFingerprint(fp string) (uint64, bool) {
	b, err := hex.DecodeString(fp)
	if err != nil || len(b) != 20 {
		return 0, false
	}
	return fingerprintKeyID(b), true
}
