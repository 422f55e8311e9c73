package sign

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/migplatform/mig/internal/action"
)

func TestSignVerifyActionRoundTrip(t *testing.T) {
	alice := newEntity(t, nil)
	bob := newEntity(t, nil)
	aliceFP, bobFP := fingerprintOf(alice.PrimaryKey), fingerprintOf(bob.PrimaryKey)
	k := keyringOf(t, alice, bob)

	aliceSigner, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatalf("NewKeySigner: %v", err)
	}
	bobSigner, err := NewKeySigner(privateArmor(t, bob), nil)
	if err != nil {
		t.Fatalf("NewKeySigner: %v", err)
	}
	if got := aliceSigner.Fingerprint(); got != aliceFP {
		t.Errorf("Fingerprint() = %s, want %s", got, aliceFP)
	}

	tests := []struct {
		name    string
		signers []Signer
		want    []string
	}{
		{"one signer", []Signer{aliceSigner}, []string{aliceFP}},
		{"two signers", []Signer{aliceSigner, bobSigner}, sorted(aliceFP, bobFP)},
		{"two signers, other order", []Signer{bobSigner, aliceSigner}, sorted(aliceFP, bobFP)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAction()
			for _, s := range tt.signers {
				if err := SignAction(a, s); err != nil {
					t.Fatalf("SignAction: %v", err)
				}
			}
			if got := len(a.PGPSignatures); got != len(tt.signers) {
				t.Fatalf("%d signatures, want %d", got, len(tt.signers))
			}
			got, err := VerifyAction(a, k)
			if err != nil {
				t.Fatalf("VerifyAction: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("VerifyAction = %v, want %v", got, tt.want)
			}
			// The signed action survives a trip through JSON, as it crosses
			// the store and the relay.
			data, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			back, err := action.ParseAction(data)
			if err != nil {
				t.Fatalf("ParseAction: %v", err)
			}
			got, err = VerifyAction(back, k)
			if err != nil {
				t.Fatalf("VerifyAction after JSON: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("VerifyAction after JSON = %v, want %v", got, tt.want)
			}
		})
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestVerifyActionTampering(t *testing.T) {
	alice := newEntity(t, nil)
	k := keyringOf(t, alice)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed := testAction()
	if err := SignAction(signed, signer); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func(a *action.Action)
		wantErr error // nil: the change is not covered and must still verify
	}{
		{"name", func(a *action.Action) { a.Name += "!" }, ErrBadSignature},
		{"target", func(a *action.Action) { a.Target = "name LIKE '%'" }, ErrBadSignature},
		{"parameter value", func(a *action.Action) {
			a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/"],"names":["^passwd$"]}}}`)
		}, ErrBadSignature},
		{"parameter added", func(a *action.Action) {
			a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"],"contents":["x"]}}}`)
		}, ErrBadSignature},
		{"module", func(a *action.Action) { a.Operations[0].Module = "netstat" }, ErrBadSignature},
		{"operation added", func(a *action.Action) {
			a.Operations = append(a.Operations, action.Operation{Module: "agentdestroy", Parameters: json.RawMessage(`{}`)})
		}, ErrBadSignature},
		{"validfrom", func(a *action.Action) { a.ValidFrom = a.ValidFrom.Add(-time.Second) }, ErrBadSignature},
		{"expireafter", func(a *action.Action) { a.ExpireAfter = a.ExpireAfter.Add(24 * time.Hour) }, ErrBadSignature},
		{"expireafter nanosecond", func(a *action.Action) { a.ExpireAfter = a.ExpireAfter.Add(time.Nanosecond) }, ErrBadSignature},
		{"id", func(a *action.Action) { a.ID++ }, ErrBadSignature},
		{"author", func(a *action.Action) { a.Description.Author = "Mallory" }, ErrBadSignature},
		{"threat level", func(a *action.Action) { a.Threat.Level = "high" }, ErrBadSignature},
		{"signature swapped with one over another action", func(a *action.Action) {
			other := testAction()
			other.Name = "other"
			if err := SignAction(other, signer); err != nil {
				t.Fatal(err)
			}
			a.PGPSignatures = other.PGPSignatures
		}, ErrBadSignature},
		{"status is not signed", func(a *action.Action) { a.Status = action.StatusCompleted }, nil},
		{"counters are not signed", func(a *action.Action) { a.Counters.Sent = 7 }, nil},
		{"parameter whitespace and key order do not matter", func(a *action.Action) {
			a.Operations[0].Parameters = json.RawMessage(`{ "searches" : { "s1" : { "names" : ["^passwd$"], "paths" : ["/etc"] } } }`)
		}, nil},
		{"time zone does not matter", func(a *action.Action) {
			a.ValidFrom = a.ValidFrom.In(time.FixedZone("X", 3600))
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := cloneAction(t, signed)
			tt.change(a)
			_, err := VerifyAction(a, k)
			// An agent checks the action it received, then verifies it
			// over the encoding the check computed: the same answer.
			c, cerr := a.Check()
			if cerr != nil {
				t.Fatalf("Check: %v", cerr)
			}
			_, cverr := VerifyChecked(c, k)
			if tt.wantErr == nil {
				if err != nil || cverr != nil {
					t.Errorf("VerifyAction = %v, VerifyChecked = %v, want success", err, cverr)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("VerifyAction = %v, want %v", err, tt.wantErr)
			}
			if !errors.Is(cverr, tt.wantErr) {
				t.Errorf("VerifyChecked = %v, want %v", cverr, tt.wantErr)
			}
		})
	}
}

// cloneAction deep-copies an action through JSON.
func cloneAction(t *testing.T, a *action.Action) *action.Action {
	t.Helper()
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := action.ParseAction(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyActionRefusals(t *testing.T) {
	alice := newEntity(t, nil)
	mallory := newEntity(t, nil)
	k := keyringOf(t, alice)
	enc, err := testAction().Encoding()
	if err != nil {
		t.Fatal(err)
	}
	good := detachSign(t, alice, enc, nil)
	byMallory := detachSign(t, mallory, enc, nil)

	tests := []struct {
		name    string
		sigs    []string
		keyring *Keyring
		wantErr error
	}{
		{"no signature", nil, k, ErrNoSignature},
		{"unknown signer", []string{byMallory}, k, ErrUnknownSigner},
		{"one good, one unknown", []string{good, byMallory}, k, ErrUnknownSigner},
		{"one good, one garbage", []string{good, "garbage"}, k, ErrBadSignature},
		{"empty signature", []string{""}, k, ErrBadSignature},
		{"nil keyring", []string{good}, nil, ErrUnknownSigner},
		{"empty keyring", []string{good}, &Keyring{}, ErrUnknownSigner},
		{"too many signatures", slices.Repeat([]string{good}, action.MaxSignatures+1), k, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAction()
			a.PGPSignatures = tt.sigs
			got, err := VerifyAction(a, tt.keyring)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("VerifyAction = %v, %v; want error %v", got, err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("VerifyAction returned fingerprints %v with an error", got)
			}
		})
	}
}

func TestOneKeyCountsOnce(t *testing.T) {
	alice := newEntity(t, nil)
	fp := fingerprintOf(alice.PrimaryKey)
	k := keyringOf(t, alice)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	if err := SignAction(a, signer); err != nil {
		t.Fatal(err)
	}
	err = SignAction(a, signer)
	if !errors.Is(err, ErrAlreadySigned) {
		t.Errorf("second SignAction = %v, want %v", err, ErrAlreadySigned)
	}
	if got := len(a.PGPSignatures); got != 1 {
		t.Errorf("%d signatures after refusing the second, want 1", got)
	}

	// Two distinct signatures by one key, made some other way, count once.
	enc, err := a.Encoding()
	if err != nil {
		t.Fatal(err)
	}
	second := detachSign(t, alice, enc, &packet.Config{SigLifetimeSecs: 86400})
	if second == a.PGPSignatures[0] {
		t.Fatal("test needs two different signatures")
	}
	a.PGPSignatures = append(a.PGPSignatures, second)
	got, err := VerifyAction(a, k)
	if err != nil {
		t.Fatalf("VerifyAction: %v", err)
	}
	if want := []string{fp}; !slices.Equal(got, want) {
		t.Errorf("VerifyAction = %v, want %v", got, want)
	}
}

func TestSignActionRefusesInvalidAction(t *testing.T) {
	signer, err := NewKeySigner(privateArmor(t, newEntity(t, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	a.Operations = nil
	if err := SignAction(a, signer); !errors.Is(err, action.ErrInvalid) {
		t.Errorf("SignAction = %v, want %v", err, action.ErrInvalid)
	}
	if len(a.PGPSignatures) != 0 {
		t.Errorf("SignAction added a signature to an invalid action")
	}
}

func TestSignatureForms(t *testing.T) {
	alice := newEntity(t, nil)
	k := keyringOf(t, alice)
	data := []byte("mig-action-v1\n{}")
	good := detachSign(t, alice, data, nil)
	parts := splitSig(t, good)
	body := unarmor(t, good)

	var text strings.Builder
	if err := openpgp.ArmoredDetachSignText(&text, alice, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	noIssuer := parts
	noIssuer.hashed = withoutSubpackets(t, parts.hashed, 16, 33)
	noIssuer.unhashed = withoutSubpackets(t, parts.unhashed, 16, 33)
	sha1 := parts
	sha1.hash = 2
	certType := parts
	certType.sigType = 0x13
	critical := detachSign(t, alice, data, &packet.Config{
		SignatureNotations: []*packet.Notation{{Name: "x@example.com", Value: []byte("y"), IsHumanReadable: true, IsCritical: true}},
	})
	harmless := detachSign(t, alice, data, &packet.Config{
		SignatureNotations: []*packet.Notation{{Name: "x@example.com", Value: []byte("y"), IsHumanReadable: true}},
	})
	sha256 := detachSign(t, alice, data, &packet.Config{DefaultHash: crypto.SHA256})

	tests := []struct {
		name    string
		sig     string
		wantErr error // nil for success
	}{
		{"good", good, nil},
		{"good, SHA-256", sha256, nil},
		{"good, CRLF line ends", strings.ReplaceAll(good, "\n", "\r\n"), nil},
		{"good, surrounded by blank lines", "\n\n" + good + "\n\n", nil},
		{"good, non-critical notation", harmless, nil},
		{"re-encoded by this test's packet writer", parts.armored(t), nil},
		{"two packets in one block", armorBody(t, armorSignature, append(slices.Clone(body), body...)), ErrBadSignature},
		{"two blocks", good + "\n" + good, ErrBadSignature},
		{"text before the block", "hello\n" + good, ErrBadSignature},
		{"text after the block", good + "\nhello\n", ErrBadSignature},
		{"no END line", good[:strings.Index(good, "-----END")], ErrBadSignature},
		{"wrong block type", strings.ReplaceAll(good, "PGP SIGNATURE", "PGP MESSAGE"), ErrBadSignature},
		{"public key in a signature block", armorBody(t, armorSignature, unarmor(t, publicArmor(t, alice))), ErrBadSignature},
		{"text signature", text.String(), ErrBadSignature},
		{"certification signature type", certType.armored(t), ErrBadSignature},
		{"SHA-1", sha1.armored(t), ErrBadSignature},
		{"no issuer", noIssuer.armored(t), ErrBadSignature},
		{"critical notation", critical, ErrBadSignature},
		{"truncated packet", armorBody(t, armorSignature, body[:len(body)-3]), ErrBadSignature},
		{"too long", good + strings.Repeat(" ", action.MaxSignatureLen), ErrBadSignature},
		{"bad base64", strings.Replace(good, "\n\n", "\n\n!!!!\n", 1), ErrBadSignature},
	}
	fp := fingerprintOf(alice.PrimaryKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(k, data, tt.sig)
			if tt.wantErr == nil {
				if err != nil || got != fp {
					t.Errorf("Verify = %q, %v; want %s", got, err, fp)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || got != "" {
				t.Errorf("Verify = %q, %v; want error %v", got, err, tt.wantErr)
			}
		})
	}
}

func TestArmorChecksum(t *testing.T) {
	body := []byte("hello, armor")
	good := armorBody(t, armorSignature, body)
	if !strings.Contains(good, "\n=") {
		t.Skip("armor encoder wrote no checksum line")
	}
	i := strings.Index(good, "\n=") + 2
	bad := good[:i] + flipBase64(good[i]) + good[i+1:]
	tests := []struct {
		name    string
		text    string
		wantErr bool
	}{
		{"good", good, false},
		{"checksum altered", bad, true},
		{"data after checksum", good[:i-1] + "\nAAAA\n" + good[i-1:], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blocks, err := decodeArmor([]byte(tt.text))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeArmor error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(blocks[0].body, body) {
				t.Errorf("body = %q, want %q", blocks[0].body, body)
			}
		})
	}
}

func flipBase64(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestCRC24(t *testing.T) {
	// Check values computed independently with GnuPG's armor output.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0xB704CE},
		{"a", 0xF25713},
		{"123456789", 0x21CF02},
	}
	for _, tt := range tests {
		if got := crc24([]byte(tt.in)); got != tt.want {
			t.Errorf("crc24(%q) = %06X, want %06X", tt.in, got, tt.want)
		}
	}
}

func TestKeyValidity(t *testing.T) {
	now := time.Now()
	data := []byte("data")

	revoked := newEntity(t, nil)
	revokedSig := detachSign(t, revoked, data, nil)
	if err := revoked.RevokeKey(packet.KeySuperseded, "test", nil); err != nil {
		t.Fatal(err)
	}

	expiring := newEntity(t, &packet.Config{KeyLifetimeSecs: 3600})
	expiringSig := detachSign(t, expiring, data, nil)

	withSub := newEntity(t, nil)
	if err := withSub.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}); err != nil {
		t.Fatal(err)
	}
	subSig := detachSign(t, withSub, data, nil)
	if got := splitSig(t, subSig); got.hashed == nil {
		t.Fatal("no hashed area")
	}

	revokedSub := newEntity(t, nil)
	if err := revokedSub.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}); err != nil {
		t.Fatal(err)
	}
	revokedSubSig := detachSign(t, revokedSub, data, nil)
	if err := revokedSub.RevokeSubkey(&revokedSub.Subkeys[0], packet.KeyCompromised, "test", nil); err != nil {
		t.Fatal(err)
	}

	expiringSub := newEntity(t, nil)
	if err := expiringSub.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: 3600}); err != nil {
		t.Fatal(err)
	}
	expiringSubSig := detachSign(t, expiringSub, data, nil)

	plain := newEntity(t, nil)
	futureSig := detachSign(t, plain, data, &packet.Config{Time: func() time.Time { return now.Add(time.Hour) }})
	nearFutureSig := detachSign(t, plain, data, &packet.Config{Time: func() time.Time { return now.Add(time.Minute) }})
	shortSig := detachSign(t, plain, data, &packet.Config{SigLifetimeSecs: 60})

	k := keyringOf(t, revoked, expiring, withSub, revokedSub, expiringSub, plain)
	tests := []struct {
		name    string
		sig     string
		at      time.Time
		want    string // fingerprint, or "" for an error
		wantErr error
	}{
		{"revoked key", revokedSig, now, "", ErrBadSignature},
		{"key before expiry", expiringSig, now, fingerprintOf(expiring.PrimaryKey), nil},
		{"key after expiry", expiringSig, now.Add(2 * time.Hour), "", ErrBadSignature},
		{"signing subkey counts as primary", subSig, now, fingerprintOf(withSub.PrimaryKey), nil},
		{"revoked subkey", revokedSubSig, now, "", ErrBadSignature},
		{"subkey before expiry", expiringSubSig, now, fingerprintOf(expiringSub.PrimaryKey), nil},
		{"subkey after expiry", expiringSubSig, now.Add(2 * time.Hour), "", ErrBadSignature},
		{"signature from the future", futureSig, now, "", ErrBadSignature},
		{"signature within clock skew", nearFutureSig, now, fingerprintOf(plain.PrimaryKey), nil},
		{"signature before its expiry", shortSig, now, fingerprintOf(plain.PrimaryKey), nil},
		{"signature after its expiry", shortSig, now.Add(time.Hour), "", ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verifyAt(k, data, tt.sig, tt.at)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("verifyAt = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if subIssuer := splitSig(t, subSig); subIssuer.sigType != 0 {
		t.Errorf("subkey signature type %#x", subIssuer.sigType)
	}
	if id, err := issuerOf(subSig); err != nil || id != withSub.Subkeys[0].PublicKey.KeyId {
		t.Errorf("subkey signature issuer = %X, %v; want the subkey %X", id, err, withSub.Subkeys[0].PublicKey.KeyId)
	}
}

func TestRSAKeys(t *testing.T) {
	data := []byte("data")
	strong := newEntity(t, &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048})
	weak := newEntity(t, &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 1024})
	k := keyringOf(t, strong, weak)

	got, err := Verify(k, data, detachSign(t, strong, data, nil))
	if want := fingerprintOf(strong.PrimaryKey); got != want || err != nil {
		t.Errorf("Verify RSA 2048 = %q, %v; want %s", got, err, want)
	}
	got, err = Verify(k, data, detachSign(t, weak, data, nil))
	if !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrBadKey) {
		t.Errorf("Verify RSA 1024 = %q, %v; want %v and %v", got, err, ErrBadSignature, ErrBadKey)
	}
	if _, err := ParsePublicKey(publicArmor(t, weak)); !errors.Is(err, ErrBadKey) {
		t.Errorf("ParsePublicKey RSA 1024 = %v, want %v", err, ErrBadKey)
	}
}

func TestKeyring(t *testing.T) {
	a, b, c := newEntity(t, nil), newEntity(t, nil), newEntity(t, nil)
	pa, pb, pc := publicArmor(t, a), publicArmor(t, b), publicArmor(t, c)
	want := sorted(fingerprintOf(a.PrimaryKey), fingerprintOf(b.PrimaryKey), fingerprintOf(c.PrimaryKey))

	var binary bytes.Buffer
	for _, e := range []*openpgp.Entity{a, b, c} {
		if err := e.Serialize(&binary); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		input   string
		want    []string
		wantErr bool
	}{
		{"concatenated armored blocks", pa + "\n" + pb + "\n\n" + pc, want, false},
		{"one armored block with three keys", armorBody(t, armorPublicKey, binary.Bytes()), want, false},
		{"binary", binary.String(), want, false},
		{"one key", pa, want[:0:0], false},
		{"empty", "", nil, true},
		{"only whitespace", " \n", nil, true},
		{"duplicate key", pa + "\n" + pa, nil, true},
		{"private key", string(privateArmor(t, a)), nil, true},
		{"signature block", detachSign(t, a, []byte("x"), nil), nil, true},
		{"garbage after keys", pa + "\ngarbage\n", nil, true},
		{"truncated binary", binary.String()[:binary.Len()-10], nil, true},
	}
	tests[3].want = []string{fingerprintOf(a.PrimaryKey)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ReadKeyring(strings.NewReader(tt.input))
			if tt.wantErr {
				if !errors.Is(err, ErrBadKey) {
					t.Errorf("ReadKeyring error = %v, want %v", err, ErrBadKey)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadKeyring: %v", err)
			}
			if got := k.Fingerprints(); !slices.Equal(got, tt.want) {
				t.Errorf("Fingerprints = %v, want %v", got, tt.want)
			}
			if got := k.Len(); got != len(tt.want) {
				t.Errorf("Len = %d, want %d", got, len(tt.want))
			}
			for _, fp := range k.Fingerprints() {
				if len(fp) != 40 || strings.ToUpper(fp) != fp {
					t.Errorf("fingerprint %q is not 40 upper-case hex digits", fp)
				}
			}
		})
	}
}

func TestKeyringAdd(t *testing.T) {
	a, b := newEntity(t, nil), newEntity(t, nil)
	var k Keyring
	if got := k.Len(); got != 0 {
		t.Errorf("zero Keyring Len = %d, want 0", got)
	}
	fp, err := k.Add(publicArmor(t, a))
	if want := fingerprintOf(a.PrimaryKey); fp != want || err != nil {
		t.Errorf("Add = %q, %v; want %s", fp, err, want)
	}
	if _, err := k.Add(publicArmor(t, a)); !errors.Is(err, ErrBadKey) {
		t.Errorf("Add of a duplicate = %v, want %v", err, ErrBadKey)
	}
	if _, err := k.Add(publicArmor(t, a) + "\n" + publicArmor(t, b)); !errors.Is(err, ErrBadKey) {
		t.Errorf("Add of two keys = %v, want %v", err, ErrBadKey)
	}
	if _, err := k.Add(string(privateArmor(t, b))); !errors.Is(err, ErrBadKey) {
		t.Errorf("Add of a private key = %v, want %v", err, ErrBadKey)
	}
	if got := k.Len(); got != 1 {
		t.Errorf("Len = %d after refused additions, want 1", got)
	}
}

func TestParsePublicKey(t *testing.T) {
	good := newEntity(t, nil)
	revoked := newEntity(t, nil)
	if err := revoked.RevokeKey(packet.NoReason, "", nil); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour)
	expired := newEntity(t, &packet.Config{KeyLifetimeSecs: 3600, Time: func() time.Time { return past }})

	tests := []struct {
		name    string
		armored string
		want    string
	}{
		{"good", publicArmor(t, good), fingerprintOf(good.PrimaryKey)},
		{"revoked", publicArmor(t, revoked), ""},
		{"expired", publicArmor(t, expired), ""},
		{"private", string(privateArmor(t, good)), ""},
		{"two keys", publicArmor(t, good) + "\n" + publicArmor(t, revoked), ""},
		{"garbage", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n", ""},
		{"empty", "", ""},
		{"too big", strings.Repeat("A", MaxKeySize+1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.armored)
			if tt.want != "" {
				if got != tt.want || err != nil {
					t.Errorf("ParsePublicKey = %q, %v; want %s", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("ParsePublicKey = %q, %v; want error %v", got, err, ErrBadKey)
			}
		})
	}
}

func TestNewKeySigner(t *testing.T) {
	e := newEntity(t, nil)
	encrypted := newEntity(t, nil)
	if err := encrypted.EncryptPrivateKeys([]byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	encArmor := privateArmor(t, encrypted)
	tests := []struct {
		name       string
		key        []byte
		passphrase string
		want       string
	}{
		{"plain", privateArmor(t, e), "", fingerprintOf(e.PrimaryKey)},
		{"encrypted, right passphrase", encArmor, "secret", fingerprintOf(encrypted.PrimaryKey)},
		{"encrypted, wrong passphrase", encArmor, "wrong", ""},
		{"public key", []byte(publicArmor(t, e)), "", ""},
		{"empty", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewKeySigner(tt.key, []byte(tt.passphrase))
			if tt.want == "" {
				if !errors.Is(err, ErrBadKey) {
					t.Errorf("NewKeySigner error = %v, want %v", err, ErrBadKey)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKeySigner: %v", err)
			}
			if got := s.Fingerprint(); got != tt.want {
				t.Errorf("Fingerprint = %s, want %s", got, tt.want)
			}
			sig, err := s.Sign([]byte("data"))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			k := &Keyring{}
			if _, err := k.Add(publicArmor(t, e)); err != nil {
				t.Fatal(err)
			}
			if _, err := k.Add(publicArmor(t, encrypted)); err != nil {
				t.Fatal(err)
			}
			if got, err := Verify(k, []byte("data"), sig); got != tt.want || err != nil {
				t.Errorf("Verify = %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	priv, pub, fp, err := GenerateKey("Dev Investigator", "dev@example.com")
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if got, err := ParsePublicKey(string(pub)); got != fp || err != nil {
		t.Errorf("ParsePublicKey(generated) = %q, %v; want %s", got, err, fp)
	}
	if strings.Contains(string(pub), "PRIVATE") {
		t.Errorf("public key armor holds a private block")
	}
	s, err := NewKeySigner(priv, nil)
	if err != nil {
		t.Fatalf("NewKeySigner(generated): %v", err)
	}
	if got := s.Fingerprint(); got != fp {
		t.Errorf("signer fingerprint %s, want %s", got, fp)
	}
	k, err := ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	if err := SignAction(a, s); err != nil {
		t.Fatal(err)
	}
	if got, err := VerifyAction(a, k); err != nil || !slices.Equal(got, []string{fp}) {
		t.Errorf("VerifyAction = %v, %v; want [%s]", got, err, fp)
	}
	_, _, fp2, err := GenerateKey("Dev Investigator", "dev@example.com")
	if err != nil || fp2 == fp {
		t.Errorf("second GenerateKey = %s, %v; want a different key", fp2, err)
	}
	for _, bad := range []struct{ name, email string }{{"", "a@example.com"}, {"A <b>", "a@example.com"}} {
		if _, _, _, err := GenerateKey(bad.name, bad.email); !errors.Is(err, ErrBadKey) {
			t.Errorf("GenerateKey(%q, %q) = %v, want %v", bad.name, bad.email, err, ErrBadKey)
		}
	}
}

func TestVerifyActionUnencodable(t *testing.T) {
	alice := newEntity(t, nil)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	if err := SignAction(a, signer); err != nil {
		t.Fatal(err)
	}
	a.Name = "bad \xff UTF-8"
	if _, err := VerifyAction(a, keyringOf(t, alice)); !errors.Is(err, action.ErrInvalid) {
		t.Errorf("VerifyAction(unencodable action) = %v, want %v", err, action.ErrInvalid)
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	const n = 8
	signers := make([]Signer, n)
	publics := make([]string, n)
	for i := range n {
		e := newEntity(t, nil)
		s, err := NewKeySigner(privateArmor(t, e), nil)
		if err != nil {
			t.Fatal(err)
		}
		signers[i], publics[i] = s, publicArmor(t, e)
	}
	data := []byte("data")
	k := &Keyring{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			if _, err := k.Add(publics[i]); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			sig, err := signers[i].Sign(data)
			if err != nil {
				errs <- err
				return
			}
			// The key may or may not be added yet; either answer is fine,
			// but nothing else is.
			fp, err := Verify(k, data, sig)
			if err != nil && !errors.Is(err, ErrUnknownSigner) {
				errs <- err
			}
			if err == nil && fp != signers[i].Fingerprint() {
				errs <- fmt.Errorf("Verify = %s, want %s", fp, signers[i].Fingerprint())
			}
			_ = k.Fingerprints()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := k.Len(); got != n {
		t.Errorf("Len = %d, want %d", got, n)
	}
}

// TestSignCheckedSignsWhatWasChecked checks that SignChecked signs the
// action as it was checked and returns that action: changing the action
// after the check changes neither what is signed nor what is returned, and
// the signature does not verify over the changed action.
func TestSignCheckedSignsWhatWasChecked(t *testing.T) {
	alice := newEntity(t, nil)
	k := keyringOf(t, alice)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	c, err := a.Check()
	if err != nil {
		t.Fatal(err)
	}
	a.Target = "name LIKE '%'"
	a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/"],"names":["^shadow$"]}}}`)

	signed, err := SignChecked(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	want := testAction()
	if signed.Target != want.Target || string(signed.Operations[0].Parameters) != string(want.Operations[0].Parameters) ||
		len(signed.PGPSignatures) != 1 {
		t.Fatalf("SignChecked returned %+v, want the action as checked with one signature", signed)
	}
	if fps, err := VerifyAction(signed, k); err != nil || len(fps) != 1 {
		t.Errorf("VerifyAction(signed) = %v, %v; want alice", fps, err)
	}
	if len(c.Signatures()) != 0 || a.PGPSignatures != nil {
		t.Errorf("SignChecked changed the Checked or the action: %q, %q", c.Signatures(), a.PGPSignatures)
	}
	a.PGPSignatures = signed.PGPSignatures
	if _, err := VerifyAction(a, k); !errors.Is(err, ErrBadSignature) {
		t.Errorf("the signature over the checked action verifies over the changed one: %v", err)
	}
	// One key counts once: a second signature by alice is refused.
	c2, err := signed.Check()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignChecked(c2, signer); !errors.Is(err, ErrAlreadySigned) {
		t.Errorf("SignChecked of an action alice signed = %v, want ErrAlreadySigned", err)
	}
}
