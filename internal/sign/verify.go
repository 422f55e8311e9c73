package sign

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/migplatform/mig/internal/action"
)

// MaxClockSkew is how far in the future a signature's creation time may be,
// to allow for clocks that disagree between an investigator's machine and an
// endpoint.
const MaxClockSkew = 5 * time.Minute

// Sentinel errors of signature verification. VerifyAction and Verify wrap
// exactly one of them, so callers map them to the agent's rejection codes
// with errors.Is.
var (
	// ErrNoSignature means an action carries no signature at all.
	ErrNoSignature = errors.New("no signature")
	// ErrBadSignature means a signature is malformed, of a kind MIG does not
	// accept, does not verify over the data, or was made by a key that may
	// not sign (revoked, expired, not a signing key).
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownSigner means a well-formed signature was made by a key that
	// is not in the keyring.
	ErrUnknownSigner = errors.New("unknown signer")
)

// acceptedHashes are the hash functions a signature may use: SHA-1, MD5 and
// RIPEMD-160 are refused.
var acceptedHashes = map[crypto.Hash]bool{
	crypto.SHA224:   true,
	crypto.SHA256:   true,
	crypto.SHA384:   true,
	crypto.SHA512:   true,
	crypto.SHA3_256: true,
	crypto.SHA3_512: true,
}

// Verify checks one armored detached signature over data against the keyring
// and returns the fingerprint of the signer's primary key (also when a
// signing subkey made the signature). The error wraps ErrBadSignature or
// ErrUnknownSigner.
func Verify(k *Keyring, data []byte, armoredSig string) (fingerprint string, err error) {
	return verifyAt(k, data, armoredSig, time.Now())
}

// VerifyAction checks an action's signatures before anything else looks at
// the action: there must be at least one, and every one of them must verify
// against the keyring over a.Encoding(). It returns the distinct fingerprints
// of the signers' primary keys, sorted, so that one key counts once however
// many times it signed. The error wraps ErrNoSignature, ErrBadSignature,
// ErrUnknownSigner, or action.ErrInvalid when the action cannot be encoded.
func VerifyAction(a *action.Action, k *Keyring) (fingerprints []string, err error) {
	return verifyActionAt(a, k, time.Now())
}

func verifyActionAt(a *action.Action, k *Keyring, now time.Time) ([]string, error) {
	if err := checkSignatureCount(a.ID, a.PGPSignatures); err != nil {
		return nil, err
	}
	enc, err := a.Encoding()
	if err != nil {
		return nil, fmt.Errorf("action %d: encoding: %w", a.ID, err)
	}
	return verifySignatures(a.ID, enc, a.PGPSignatures, k, now)
}

// VerifyChecked is VerifyAction for an action checked with
// action.Action.Check: the signatures it holds are verified over the
// encoding computed when it was checked, from the action it holds (an
// agent checks the action it received, then verifies it, encoding it
// once). Its results and errors are VerifyAction's.
func VerifyChecked(c *action.Checked, k *Keyring) (fingerprints []string, err error) {
	return verifyCheckedAt(c, k, time.Now())
}

func verifyCheckedAt(c *action.Checked, k *Keyring, now time.Time) ([]string, error) {
	sigs := c.Signatures()
	if err := checkSignatureCount(c.ID(), sigs); err != nil {
		return nil, err
	}
	return verifySignatures(c.ID(), c.Encoding(), sigs, k, now)
}

// checkSignatureCount refuses an action without signatures or with more
// than the limit.
func checkSignatureCount(id uint64, sigs []string) error {
	if len(sigs) == 0 {
		return fmt.Errorf("action %d: %w", id, ErrNoSignature)
	}
	if len(sigs) > action.MaxSignatures {
		return fmt.Errorf("action %d: %w: %d signatures, more than the limit of %d",
			id, ErrBadSignature, len(sigs), action.MaxSignatures)
	}
	return nil
}

// verifySignatures verifies every signature over enc, the encoding of
// action id, and returns the distinct signers' fingerprints, sorted.
func verifySignatures(id uint64, enc []byte, sigs []string, k *Keyring, now time.Time) ([]string, error) {
	var fps []string
	for i, s := range sigs {
		fp, err := verifyAt(k, enc, s, now)
		if err != nil {
			return nil, fmt.Errorf("action %d: signature %d of %d: %w", id, i+1, len(sigs), err)
		}
		if !slices.Contains(fps, fp) {
			fps = append(fps, fp)
		}
	}
	slices.Sort(fps)
	return fps, nil
}

// verifyAt is Verify at the time now.
func verifyAt(k *Keyring, data []byte, armoredSig string, now time.Time) (string, error) {
	if k == nil {
		k = &Keyring{}
	}
	ck := verifiedKey{data: sha256.Sum256(data), sig: armoredSig}
	if v, ok := k.verified.get(ck); ok {
		fp := fingerprintOf(v.cand.entity.PrimaryKey)
		if err := v.cand.usable(v.sig, now); err != nil {
			return "", fmt.Errorf("%w: key %s: %w", ErrBadSignature, fp, err)
		}
		return fp, nil
	}
	sig, err := parseSignature(armoredSig)
	if err != nil {
		return "", err
	}
	issuer := *sig.IssuerKeyId
	cands := k.candidates(issuer, sig.IssuerFingerprint)
	if len(cands) == 0 {
		if sig.IssuerFingerprint != nil {
			return "", fmt.Errorf("%w: signature by key %X, which is not in the keyring", ErrUnknownSigner, sig.IssuerFingerprint)
		}
		return "", fmt.Errorf("%w: signature by key ID %016X, which is not in the keyring", ErrUnknownSigner, issuer)
	}
	var verr error
	for _, c := range cands {
		h, err := sig.PrepareVerify()
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		h.Write(data)
		if err := c.key.VerifySignature(h, sig); err != nil {
			verr = err
			continue
		}
		fp := fingerprintOf(c.entity.PrimaryKey)
		if err := c.usable(sig, now); err != nil {
			return "", fmt.Errorf("%w: key %s: %w", ErrBadSignature, fp, err)
		}
		k.verified.put(ck, verified{sig: sig, cand: c})
		return fp, nil
	}
	return "", fmt.Errorf("%w: signature by key %X does not verify over the data: %w",
		ErrBadSignature, cands[0].key.Fingerprint, verr)
}

// parseSignature decodes an armored detached signature and checks its form:
// exactly one armored block holding exactly one version 4 binary signature
// packet with an accepted hash and an issuer.
func parseSignature(armoredSig string) (*packet.Signature, error) {
	if len(armoredSig) > action.MaxSignatureLen {
		return nil, fmt.Errorf("%w: signature is %d bytes, more than the limit of %d",
			ErrBadSignature, len(armoredSig), action.MaxSignatureLen)
	}
	blocks, err := decodeArmor([]byte(armoredSig))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w: %d armored blocks, want exactly one", ErrBadSignature, len(blocks))
	}
	if blocks[0].typ != armorSignature {
		return nil, fmt.Errorf("%w: armored block is %q, want %q", ErrBadSignature, blocks[0].typ, armorSignature)
	}
	r := bytes.NewReader(blocks[0].body)
	p, err := packet.Read(r)
	if err != nil {
		return nil, fmt.Errorf("%w: reading signature packet: %w", ErrBadSignature, err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, fmt.Errorf("%w: armored signature holds a %T packet, not a signature", ErrBadSignature, p)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: armored signature holds more than one packet (%d bytes after the first)", ErrBadSignature, r.Len())
	}
	if sig.Version != 4 {
		return nil, fmt.Errorf("%w: version %d signature; only version 4 signatures are accepted", ErrBadSignature, sig.Version)
	}
	if sig.SigType != packet.SigTypeBinary {
		return nil, fmt.Errorf("%w: signature type 0x%02x; only binary document signatures (0x00) are accepted", ErrBadSignature, uint8(sig.SigType))
	}
	if !acceptedHashes[sig.Hash] {
		return nil, fmt.Errorf("%w: signature uses hash %v, which is not accepted", ErrBadSignature, sig.Hash)
	}
	if sig.IssuerKeyId == nil {
		return nil, fmt.Errorf("%w: signature names no issuer key", ErrBadSignature)
	}
	if sig.IssuerFingerprint != nil {
		if len(sig.IssuerFingerprint) != 20 || fingerprintKeyID(sig.IssuerFingerprint) != *sig.IssuerKeyId {
			return nil, fmt.Errorf("%w: issuer fingerprint %X and issuer key ID %016X disagree",
				ErrBadSignature, sig.IssuerFingerprint, *sig.IssuerKeyId)
		}
	}
	return sig, nil
}

// fingerprintKeyID returns the key ID of a version 4 fingerprint: its last
// eight bytes.
func fingerprintKeyID(fp []byte) uint64 {
	var id uint64
	for _, b := range fp[len(fp)-8:] {
		id = id<<8 | uint64(b)
	}
	return id
}

// usable checks that the key that made sig may sign at time now, and that sig
// itself is current.
func (c candidate) usable(sig *packet.Signature, now time.Time) error {
	e := c.entity
	self, identity := e.PrimarySelfSignature()
	if self == nil {
		return errors.New("no valid self-signature")
	}
	if e.Revoked(now) || (identity != nil && identity.Revoked(now)) {
		return errors.New("key is revoked")
	}
	if expired(e.PrimaryKey.CreationTime, self.KeyLifetimeSecs, now) {
		return errors.New("key is expired")
	}
	if expired(self.CreationTime, self.SigLifetimeSecs, now) {
		return errors.New("key's self-signature is expired")
	}
	checked := []*packet.Signature{sig, self}
	if c.sub != nil {
		binding := c.sub.Sig
		if c.sub.Revoked(now) {
			return fmt.Errorf("signing subkey %X is revoked", c.key.Fingerprint)
		}
		if !binding.FlagsValid || !binding.FlagSign {
			return fmt.Errorf("subkey %X is not a signing subkey", c.key.Fingerprint)
		}
		if binding.EmbeddedSignature == nil {
			return fmt.Errorf("signing subkey %X has no cross-signature", c.key.Fingerprint)
		}
		if expired(c.key.CreationTime, binding.KeyLifetimeSecs, now) {
			return fmt.Errorf("signing subkey %X is expired", c.key.Fingerprint)
		}
		if expired(binding.CreationTime, binding.SigLifetimeSecs, now) ||
			expired(binding.EmbeddedSignature.CreationTime, binding.EmbeddedSignature.SigLifetimeSecs, now) {
			return fmt.Errorf("binding signature of subkey %X is expired", c.key.Fingerprint)
		}
		checked = append(checked, binding, binding.EmbeddedSignature)
	} else if !self.FlagsValid || !self.FlagSign {
		return errors.New("primary key is not allowed to sign")
	}
	if err := checkKeyAlgorithm(c.key); err != nil {
		return err
	}
	if sig.CreationTime.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("signature was made at %s, in the future", sig.CreationTime.UTC().Format(time.RFC3339))
	}
	if sig.CreationTime.Before(c.key.CreationTime) {
		return fmt.Errorf("signature was made at %s, before the key was created at %s",
			sig.CreationTime.UTC().Format(time.RFC3339), c.key.CreationTime.UTC().Format(time.RFC3339))
	}
	if expired(sig.CreationTime, sig.SigLifetimeSecs, now) {
		return errors.New("signature is expired")
	}
	for _, s := range checked {
		for _, n := range s.Notations {
			if n.IsCritical {
				return fmt.Errorf("unknown critical notation %q", n.Name)
			}
		}
	}
	return nil
}

// expired reports whether something created at created with a lifetime of
// lifetime seconds (none when nil or zero) has expired at now.
func expired(created time.Time, lifetime *uint32, now time.Time) bool {
	if lifetime == nil || *lifetime == 0 {
		return false
	}
	return now.After(created.Add(time.Duration(*lifetime) * time.Second))
}

// issuerOf returns the issuer key ID of an armored signature, for SignAction
// to recognise a key that already signed.
func issuerOf(armoredSig string) (uint64, error) {
	sig, err := parseSignature(armoredSig)
	if err != nil {
		return 0, err
	}
	return *sig.IssuerKeyId, nil
}
