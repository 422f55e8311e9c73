package sign

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/migplatform/mig/internal/action"
)

// testAction returns a valid unsigned action.
func testAction() *action.Action {
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &action.Action{
		ID:          4242,
		Name:        "find passwd",
		Target:      "environment->>'os'='linux'",
		Description: action.Description{Author: "Alice", Email: "alice@example.com", Revision: 1},
		Threat:      action.Threat{Level: "info", Family: "test"},
		ValidFrom:   from,
		ExpireAfter: from.Add(time.Hour),
		Operations: []action.Operation{{
			Module:     "file",
			Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"]}}}`),
		}},
	}
}

// newEntity makes an Ed25519 (legacy EdDSA, as GnuPG 2.2 knows it) key with
// cfg's settings; cfg may set Time and KeyLifetimeSecs.
func newEntity(t *testing.T, cfg *packet.Config) *openpgp.Entity {
	t.Helper()
	if cfg == nil {
		cfg = &packet.Config{}
	}
	if cfg.Algorithm == 0 {
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	}
	e, err := openpgp.NewEntity("Test", "", "test@example.com", cfg)
	if err != nil {
		t.Fatalf("NewEntity: %v", err)
	}
	e.Subkeys = nil
	return e
}

// publicArmor returns e's public key, armored.
func publicArmor(t *testing.T, e *openpgp.Entity) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatalf("Serialize: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// privateArmor returns e's private key, armored, without re-signing.
func privateArmor(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatalf("SerializePrivate: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// keyringOf returns a keyring holding the public parts of es.
func keyringOf(t *testing.T, es ...*openpgp.Entity) *Keyring {
	t.Helper()
	k := &Keyring{}
	for _, e := range es {
		if _, err := k.Add(publicArmor(t, e)); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	return k
}

// detachSign signs data with e directly, with cfg (nil for defaults).
func detachSign(t *testing.T, e *openpgp.Entity, data []byte, cfg *packet.Config) string {
	t.Helper()
	var b strings.Builder
	if err := openpgp.ArmoredDetachSign(&b, e, bytes.NewReader(data), cfg); err != nil {
		t.Fatalf("ArmoredDetachSign: %v", err)
	}
	return b.String()
}

// armorBody armors body as blockType.
func armorBody(t *testing.T, blockType string, body []byte) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, blockType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// unarmor returns the body of the single armored block in s.
func unarmor(t *testing.T, s string) []byte {
	t.Helper()
	blocks, err := decodeArmor([]byte(s))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("decodeArmor: %d blocks, %v", len(blocks), err)
	}
	return blocks[0].body
}

// v4sig is a version 4 signature packet taken apart, so tests can build
// signatures that a well-behaved signer never makes.
type v4sig struct {
	sigType, pkAlgo, hash byte
	hashed, unhashed      []byte
	rest                  []byte // hash prefix and signature MPIs
}

// splitSig takes apart the one signature packet in an armored signature.
func splitSig(t *testing.T, armored string) v4sig {
	t.Helper()
	body := unarmor(t, armored)
	if body[0]&0xC0 != 0xC0 || body[0]&0x3F != 2 {
		t.Fatalf("not a new-format signature packet: %#x", body[0])
	}
	var n, off int
	switch l := int(body[1]); {
	case l < 192:
		n, off = l, 2
	case l < 224:
		n, off = (l-192)<<8+int(body[2])+192, 3
	case l == 255:
		n, off = int(binary.BigEndian.Uint32(body[2:6])), 6
	default:
		t.Fatalf("partial length in a signature packet")
	}
	p := body[off : off+n]
	if p[0] != 4 {
		t.Fatalf("signature version %d", p[0])
	}
	var s v4sig
	s.sigType, s.pkAlgo, s.hash = p[1], p[2], p[3]
	hl := int(binary.BigEndian.Uint16(p[4:6]))
	s.hashed = p[6 : 6+hl]
	p = p[6+hl:]
	ul := int(binary.BigEndian.Uint16(p[0:2]))
	s.unhashed = p[2 : 2+ul]
	s.rest = p[2+ul:]
	return s
}

// encode returns the signature packet, with a new-format header.
func (s v4sig) encode() []byte {
	var p []byte
	p = append(p, 4, s.sigType, s.pkAlgo, s.hash)
	p = binary.BigEndian.AppendUint16(p, uint16(len(s.hashed)))
	p = append(p, s.hashed...)
	p = binary.BigEndian.AppendUint16(p, uint16(len(s.unhashed)))
	p = append(p, s.unhashed...)
	p = append(p, s.rest...)
	out := []byte{0xC2, 0xFF}
	out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
	return append(out, p...)
}

// armored returns the signature packet armored.
func (s v4sig) armored(t *testing.T) string {
	return armorBody(t, armorSignature, s.encode())
}

// withoutSubpackets returns a subpacket area without the subpackets of the
// given types.
func withoutSubpackets(t *testing.T, area []byte, types ...byte) []byte {
	t.Helper()
	var out []byte
	for len(area) > 0 {
		var n, off int
		switch l := int(area[0]); {
		case l < 192:
			n, off = l, 1
		case l < 255:
			n, off = (l-192)<<8+int(area[1])+192, 2
		default:
			n, off = int(binary.BigEndian.Uint32(area[1:5])), 5
		}
		sub := area[:off+n]
		typ := area[off] & 0x7F
		area = area[off+n:]
		drop := false
		for _, d := range types {
			if typ == d {
				drop = true
			}
		}
		if !drop {
			out = append(out, sub...)
		}
	}
	return out
}
