package sign

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzKey is a key for the fuzz targets: its signer and a keyring holding
// its public part.
type fuzzKey struct {
	pub, priv []byte
	fp        string
	signer    Signer
	keyring   *Keyring
}

func newFuzzKey(f *testing.F) fuzzKey {
	f.Helper()
	priv, pub, fp, err := GenerateKey("Fuzz", "fuzz@example.com")
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewKeySigner(priv, nil)
	if err != nil {
		f.Fatal(err)
	}
	k := &Keyring{}
	if _, err := k.Add(string(pub)); err != nil {
		f.Fatal(err)
	}
	return fuzzKey{pub: pub, priv: priv, fp: fp, signer: s, keyring: k}
}

func FuzzVerify(f *testing.F) {
	key := newFuzzKey(f)
	s, k := key.signer, key.keyring
	data := []byte("mig-action-v1\n{}")
	good, err := s.Sign(data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, good)
	f.Add(data, good+"\n"+good)
	f.Add(data, strings.ReplaceAll(good, "\n", "\r\n"))
	f.Add(data, "-----BEGIN PGP SIGNATURE-----\n\nwsBcBAABCAAQBQJ=\n-----END PGP SIGNATURE-----\n")
	f.Add(data, "-----BEGIN PGP SIGNATURE-----\nVersion: x\n\n=AAAA\n-----END PGP SIGNATURE-----\n")
	f.Add([]byte{}, "")
	f.Add([]byte("x"), string(key.pub))
	f.Fuzz(func(t *testing.T, data []byte, sig string) {
		fp, err := Verify(k, data, sig)
		if err != nil {
			if fp != "" {
				t.Errorf("Verify returned fingerprint %q with error %v", fp, err)
			}
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownSigner) {
				t.Errorf("Verify error %v wraps neither sentinel", err)
			}
			return
		}
		if fp != key.fp {
			t.Errorf("Verify = %q, want the only key %s", fp, key.fp)
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	key := newFuzzKey(f)
	s, k := key.signer, key.keyring
	now := time.Unix(1_800_000_000, 0)
	good, err := MakeToken(s, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("1;1800000000;00000000000000000000000000000000;" + base64.StdEncoding.EncodeToString([]byte("x")))
	f.Add("1;;;")
	f.Add(";;;;;;")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		fp, err := VerifyToken(k, token, now)
		if err != nil {
			if fp != "" || !errors.Is(err, ErrBadToken) {
				t.Errorf("VerifyToken = %q, %v; want no fingerprint and %v", fp, err, ErrBadToken)
			}
			return
		}
		if fp != key.fp {
			t.Errorf("VerifyToken = %q, want the only key %s", fp, key.fp)
		}
	})
}

func FuzzReadKeyring(f *testing.F) {
	key := newFuzzKey(f)
	f.Add(string(key.pub))
	f.Add(string(key.priv))
	f.Add(string(key.pub) + "\n" + string(key.pub))
	f.Add("\x99\x00\x01")
	f.Add("")
	f.Fuzz(func(t *testing.T, input string) {
		k, err := ReadKeyring(strings.NewReader(input))
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("ReadKeyring error %v does not wrap %v", err, ErrBadKey)
			}
			return
		}
		if k.Len() == 0 || k.Len() != len(k.Fingerprints()) {
			t.Errorf("ReadKeyring succeeded with Len %d and %d fingerprints", k.Len(), len(k.Fingerprints()))
		}
	})
}
