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
	if len(f) != 4 || f[0] != "2" || f[1] != strconv.FormatInt(now.Unix(), 10) || len(f[2]) != 32 {
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
	// A version 1 token (reusable for five minutes), signed as version 1
	// clients signed it, and its signature moved into a version 2 token.
	v1Sig, err := signer.Sign([]byte("mig-token-v1;" + f[1] + ";" + f[2]))
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
		{"max age later", good, now.Add(TokenMaxAge), nil},
		{"max age and skew later", good, time.Unix(now.Unix(), 0).Add(TokenMaxAge + TokenMaxSkew), nil},
		{"just before it expires", good, time.Unix(now.Unix(), 0).Add(TokenMaxAge + TokenMaxSkew + time.Second - time.Nanosecond), nil},
		{"when it expires", good, time.Unix(now.Unix(), 0).Add(TokenMaxAge + TokenMaxSkew + time.Second), ErrBadToken},
		{"4 minutes later", good, now.Add(4 * time.Minute), ErrBadToken},
		{"skew earlier", good, time.Unix(now.Unix(), 0).Add(-TokenMaxSkew), nil},
		{"more than skew earlier", good, time.Unix(now.Unix(), 0).Add(-TokenMaxSkew - time.Second), ErrBadToken},
		{"4 minutes earlier", good, now.Add(-4 * time.Minute), ErrBadToken},
		{"version 1", join("1", f[1], f[2], b64(v1Sig)), now, ErrBadToken},
		{"version 1 signature in version 2", join(f[0], f[1], f[2], b64(v1Sig)), now, ErrBadSignature},
		{"unknown signer", byMallory, now, ErrUnknownSigner},
		{"time changed", join(f[0], strconv.FormatInt(now.Unix()+1, 10), f[2], f[3]), now, ErrBadSignature},
		{"nonce changed", join(f[0], f[1], strings.Repeat("0", 32), f[3]), now, ErrBadSignature},
		{"action signature", join(f[0], f[1], f[2], b64(actionSig)), now, ErrBadSignature},
		{"signature without the prefix", join(f[0], f[1], f[2], b64(bare)), now, ErrBadSignature},
		{"signature not base64", join(f[0], f[1], f[2], "!!"+f[3]), now, ErrBadToken},
		{"signature not armored", join(f[0], f[1], f[2], b64("x")), now, ErrBadSignature},
		{"version 3", join("3", f[1], f[2], f[3]), now, ErrBadToken},
		{"version 02", join("02", f[1], f[2], f[3]), now, ErrBadToken},
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
				want := Token{Fingerprint: fp, Time: time.Unix(now.Unix(), 0).UTC(), Nonce: f[2]}
				if got != want || err != nil {
					t.Errorf("VerifyToken = %+v, %v; want %+v", got, err, want)
				}
				if !tt.at.Before(got.Expires()) {
					t.Errorf("accepted at %s, not before Expires() = %s", tt.at, got.Expires())
				}
				return
			}
			if got != (Token{}) || !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrBadToken) {
				t.Errorf("VerifyToken = %+v, %v; want errors %v and %v", got, err, tt.wantErr, ErrBadToken)
			}
		})
	}
}

// TestTokenVersion1Refused checks that the error for a version 1 token says
// why, so that an investigator with an old mig knows to upgrade.
func TestTokenVersion1Refused(t *testing.T) {
	alice := newEntity(t, nil)
	k := keyringOf(t, alice)
	signer, err := NewKeySigner(privateArmor(t, alice), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sec, nonce := strconv.FormatInt(now.Unix(), 10), strings.Repeat("ab", 16)
	sig, err := signer.Sign([]byte("mig-token-v1;" + sec + ";" + nonce))
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifyToken(k, "1;"+sec+";"+nonce+";"+base64.StdEncoding.EncodeToString([]byte(sig)), now)
	if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "version 1 is refused") {
		t.Errorf("VerifyToken(version 1 token) = %v, want %v saying version 1 is refused", err, ErrBadToken)
	}
}
