package sign

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	alice := newEntity(t, nil)
	mallory := newEntity(t, nil)
	k := keyringOf(t, alice)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	malSigner, err := NewKeySigner(privateArmor(t, mallory), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good, err := MakeToken(signer, now)
	if err != nil {
		t.Fatalf("MakeToken: %v", err)
	}
	again, err := MakeToken(signer, now)
	if err != nil {
		t.Fatal(err)
	}
	if good == again {
		t.Errorf("two tokens made at the same second are equal")
	}
	f := strings.Split(good, ";")
	if len(f) != 4 || f[0] != "1" || f[1] != strconv.FormatInt(now.Unix(), 10) || len(f[2]) != 32 {
		t.Fatalf("token %q does not have the documented form", good)
	}
	byMallory, err := MakeToken(malSigner, now)
	if err != nil {
		t.Fatal(err)
	}
	// A signature over an action encoding is not a token signature.
	enc, err := testAction().Encoding()
	if err != nil {
		t.Fatal(err)
	}
	actionSig, err := signer.Sign(enc)
	if err != nil {
		t.Fatal(err)
	}
	// A signature over the token text without the domain prefix.
	bare, err := signer.Sign([]byte(f[1] + ";" + f[2]))
	if err != nil {
		t.Fatal(err)
	}
	join := func(parts ...string) string { return strings.Join(parts, ";") }
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	sig, err := base64.StdEncoding.DecodeString(f[3])
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		token   string
		at      time.Time
		wantErr error // nil for success
	}{
		{"good", good, now, nil},
		{"4 minutes later", good, now.Add(4 * time.Minute), nil},
		{"4 minutes earlier", good, now.Add(-4 * time.Minute), nil},
		{"6 minutes later", good, now.Add(6 * time.Minute), ErrBadToken},
		{"6 minutes earlier", good, now.Add(-6 * time.Minute), ErrBadToken},
		{"unknown signer", byMallory, now, ErrUnknownSigner},
		{"time changed", join(f[0], strconv.FormatInt(now.Unix()+1, 10), f[2], f[3]), now, ErrBadSignature},
		{"nonce changed", join(f[0], f[1], strings.Repeat("0", 32), f[3]), now, ErrBadSignature},
		{"action signature", join(f[0], f[1], f[2], b64(actionSig)), now, ErrBadSignature},
		{"signature without the prefix", join(f[0], f[1], f[2], b64(bare)), now, ErrBadSignature},
		{"signature not base64", join(f[0], f[1], f[2], "!!"+f[3]), now, ErrBadToken},
		{"signature not armored", join(f[0], f[1], f[2], b64("x")), now, ErrBadSignature},
		{"version 2", join("2", f[1], f[2], f[3]), now, ErrBadToken},
		{"three fields", join(f[0], f[1], f[3]), now, ErrBadToken},
		{"five fields", join(f[0], f[1], f[2], f[3], ""), now, ErrBadToken},
		{"empty", "", now, ErrBadToken},
		{"time with plus sign", join(f[0], "+"+f[1], f[2], f[3]), now, ErrBadToken},
		{"time not a number", join(f[0], "x", f[2], f[3]), now, ErrBadToken},
		{"time far in the past", join(f[0], "-9223372036854775808", f[2], f[3]), now, ErrBadToken},
		{"time far in the future", join(f[0], "9223372036854775807", f[2], f[3]), now, ErrBadToken},
		{"nonce upper case", join(f[0], f[1], strings.ToUpper(f[2])+"A", f[3]), now, ErrBadToken},
		{"nonce short", join(f[0], f[1], f[2][:8], f[3]), now, ErrBadToken},
		{"nonce not hex", join(f[0], f[1], strings.Repeat("g", 32), f[3]), now, ErrBadToken},
		{"too long", good + strings.Repeat("A", MaxTokenLen), now, ErrBadToken},
		{"raw armored signature", join(f[0], f[1], f[2], string(sig)), now, ErrBadToken},
	}
	fp := fingerprintOf(alice.PrimaryKey)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyToken(k, tt.token, tt.at)
			if tt.wantErr == nil {
				if got != fp || err != nil {
					t.Errorf("VerifyToken = %q, %v; want %s", got, err, fp)
				}
				return
			}
			if got != "" || !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrBadToken) {
				t.Errorf("VerifyToken = %q, %v; want errors %v and %v", got, err, tt.wantErr, ErrBadToken)
			}
		})
	}
}
