package sign

import (
	"encoding/base64"
	"errors"
	"strconv"
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
	// A version 1 token, really signed: it must be refused.
	nonce := strings.Repeat("5a", 16)
	v1, err := s.Sign([]byte("mig-token-v1;1800000000;" + nonce))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("1;1800000000;" + nonce + ";" + base64.StdEncoding.EncodeToString([]byte(v1)))
	f.Add("2;1800000000;" + nonce + ";" + base64.StdEncoding.EncodeToString([]byte(v1)))
	f.Add("2;1800000000;00000000000000000000000000000000;" + base64.StdEncoding.EncodeToString([]byte("x")))
	f.Add("2;;;")
	f.Add(";;;;;;")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		got, err := VerifyToken(k, token, now)
		if err != nil {
			if got != (Token{}) || !errors.Is(err, ErrBadToken) {
				t.Errorf("VerifyToken = %+v, %v; want no token and %v", got, err, ErrBadToken)
			}
			return
		}
		if got.Fingerprint != key.fp {
			t.Errorf("VerifyToken fingerprint = %q, want the only key %s", got.Fingerprint, key.fp)
		}
		// What is accepted has the documented form: version 2, the
		// nonce and time it carries, inside the window.
		fields := strings.Split(token, ";")
		if len(fields) != 4 || fields[0] != TokenVersion || fields[2] != got.Nonce ||
			fields[1] != strconv.FormatInt(got.Time.Unix(), 10) {
			t.Errorf("VerifyToken(%q) accepted %+v, which does not match its fields", token, got)
		}
		if !now.Before(got.Expires()) || got.Time.After(now.Add(TokenMaxSkew)) {
			t.Errorf("VerifyToken(%q) accepted time %s outside the window at %s", token, got.Time, now)
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
