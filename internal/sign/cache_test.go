package sign

import (
	"errors"
	"testing"
	"time"
)

// TestVerifyCache checks that the cache of verified signatures answers only
// for the exact signature over the exact data with the same keyring, keeps
// the time checks, and never remembers a failure.
func TestVerifyCache(t *testing.T) {
	now := time.Now()
	data := []byte("signed data")
	signer, other := newEntity(t, nil), newEntity(t, nil)
	sig := detachSign(t, signer, data, nil)
	otherSig := detachSign(t, other, data, nil)
	k := keyringOf(t, signer)
	fp := fingerprintOf(signer.PrimaryKey)

	tests := []struct {
		name       string
		k          *Keyring
		data       []byte
		sig        string
		at         time.Time
		want       string
		wantErr    error
		wantCached int
	}{
		{"first verification", k, data, sig, now, fp, nil, 1},
		{"again, from the cache", k, data, sig, now, fp, nil, 1},
		{"same signature over other data", k, []byte("signed datA"), sig, now, "", ErrBadSignature, 1},
		{"signature by a key not in the keyring", k, data, otherSig, now, "", ErrUnknownSigner, 1},
		{"another keyring without the key", keyringOf(t, other), data, sig, now, "", ErrUnknownSigner, 0},
		{"cached, from before the signature", k, data, sig, now.Add(-time.Hour), "", ErrBadSignature, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verifyAt(tt.k, tt.data, tt.sig, tt.at)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("verifyAt = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if n := len(tt.k.verified.m); n != tt.wantCached {
				t.Errorf("%d verifications cached, want %d", n, tt.wantCached)
			}
		})
	}
	if _, err := k.Add(publicArmor(t, other)); err != nil {
		t.Fatal(err)
	}
	if n := len(k.verified.m); n != 0 {
		t.Errorf("%d verifications cached after the keyring changed, want 0", n)
	}
	if got, err := verifyAt(k, data, otherSig, now); got != fingerprintOf(other.PrimaryKey) || err != nil {
		t.Errorf("verifyAt with the added key = %q, %v; want %s", got, err, fingerprintOf(other.PrimaryKey))
	}
}
