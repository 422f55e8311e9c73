package sign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// gnupg is a GnuPG home directory for one test.
type gnupg struct {
	t    *testing.T
	path string
	home string
}

// newGnuPG makes an empty GnuPG home in a temporary directory and stops its
// gpg-agent when the test ends. It skips the test when gpg is not installed.
func newGnuPG(t *testing.T) *gnupg {
	t.Helper()
	path, err := exec.LookPath("gpg")
	if err != nil {
		t.Skipf("gpg is not installed: %v", err)
	}
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop the agent this test's gpg started for this home only.
		cmd := exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("stopping gpg-agent: %v: %s", err, out)
		}
	})
	return &gnupg{t: t, path: path, home: home}
}

// run runs gpg in the test's home and returns its standard output.
func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// try is run that returns the error.
func (g *gnupg) try(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(g.path, append([]string{"--batch", "--homedir", g.home}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), errors.New("gpg " + strings.Join(args, " ") + ": " + err.Error() + ": " + stderr.String())
	}
	return stdout.Bytes(), nil
}

// genKey makes a key without passphrase and returns its fingerprint.
func (g *gnupg) genKey(uid, algo, usage string) string {
	g.t.Helper()
	g.run(nil, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", uid, algo, usage, "never")
	for line := range strings.Lines(string(g.run(nil, "--with-colons", "--list-keys", "--", uid))) {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9] // the first fpr line is the primary key's
		}
	}
	g.t.Fatalf("gpg lists no fingerprint for %q", uid)
	return ""
}

func TestGPGInterop(t *testing.T) {
	g := newGnuPG(t)
	for _, tt := range []struct {
		algo string
		uid  string
	}{
		{"ed25519", "Ed <ed@example.com>"},
		{"rsa3072", "Rsa <rsa@example.com>"},
	} {
		t.Run(tt.algo, func(t *testing.T) {
			fp := g.genKey(tt.uid, tt.algo, "sign")
			k, err := ReadKeyring(bytes.NewReader(g.run(nil, "--armor", "--export", fp)))
			if err != nil {
				t.Fatalf("ReadKeyring(gpg --armor --export): %v", err)
			}
			bin, err := ReadKeyring(bytes.NewReader(g.run(nil, "--export", fp)))
			if err != nil {
				t.Fatalf("ReadKeyring(gpg --export): %v", err)
			}
			if got, want := bin.Fingerprints(), []string{fp}; !slices.Equal(got, want) {
				t.Errorf("binary keyring fingerprints = %v, want %v", got, want)
			}

			// gpg signs the encoding by hand, as an investigator would.
			a := testAction()
			enc, err := a.Encoding()
			if err != nil {
				t.Fatal(err)
			}
			sig := g.run(enc, "--armor", "--detach-sign", "--local-user", fp)
			a.PGPSignatures = []string{string(sig)}
			got, err := VerifyAction(a, k)
			if err != nil || !slices.Equal(got, []string{fp}) {
				t.Fatalf("VerifyAction(gpg signature) = %v, %v; want [%s]", got, err, fp)
			}
			tampered := cloneAction(t, a)
			tampered.Target = "all"
			if _, err := VerifyAction(tampered, k); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyAction(tampered) = %v, want %v", err, ErrBadSignature)
			}
			// gpg's text-mode signatures are refused.
			textSig := g.run(enc, "--armor", "--detach-sign", "--textmode", "--local-user", fp)
			a.PGPSignatures = []string{string(textSig)}
			if _, err := VerifyAction(a, k); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyAction(gpg --textmode signature) = %v, want %v", err, ErrBadSignature)
			}

			// NewGPGSigner end to end, found by email.
			email := tt.uid[strings.Index(tt.uid, "<")+1 : len(tt.uid)-1]
			s, err := NewGPGSigner(g.path, g.home, email)
			if err != nil {
				t.Fatalf("NewGPGSigner: %v", err)
			}
			if got := s.Fingerprint(); got != fp {
				t.Errorf("NewGPGSigner fingerprint = %s, want %s", got, fp)
			}
			a = testAction()
			if err := SignAction(a, s); err != nil {
				t.Fatalf("SignAction(gpg signer): %v", err)
			}
			if got, err := VerifyAction(a, k); err != nil || !slices.Equal(got, []string{fp}) {
				t.Errorf("VerifyAction(gpg signer) = %v, %v; want [%s]", got, err, fp)
			}
			if err := SignAction(a, s); !errors.Is(err, ErrAlreadySigned) {
				t.Errorf("second SignAction(gpg signer) = %v, want %v", err, ErrAlreadySigned)
			}
			now := time.Now()
			tok, err := MakeToken(s, now)
			if err != nil {
				t.Fatalf("MakeToken(gpg signer): %v", err)
			}
			if got, err := VerifyToken(k, tok, now); got.Fingerprint != fp || err != nil {
				t.Errorf("VerifyToken(gpg token) = %+v, %v; want %s", got, err, fp)
			}
		})
	}
	if _, err := NewGPGSigner(g.path, g.home, "example.com"); !errors.Is(err, ErrBadKey) {
		t.Errorf("NewGPGSigner with a key ID naming two keys = %v, want %v", err, ErrBadKey)
	}
	if _, err := NewGPGSigner(g.path, g.home, "nobody@example.org"); err == nil {
		t.Errorf("NewGPGSigner with an unknown key succeeded")
	}
	if _, err := NewGPGSigner(filepath.Join(t.TempDir(), "no-gpg"), g.home, "ed@example.com"); err == nil {
		t.Errorf("NewGPGSigner with a missing gpg binary succeeded")
	}
}

func TestGPGSigningSubkey(t *testing.T) {
	g := newGnuPG(t)
	fp := g.genKey("Sub <sub@example.com>", "ed25519", "cert")
	g.run(nil, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key", fp, "ed25519", "sign", "never")
	k, err := ReadKeyring(bytes.NewReader(g.run(nil, "--armor", "--export", fp)))
	if err != nil {
		t.Fatalf("ReadKeyring: %v", err)
	}
	s, err := NewGPGSigner("", g.home, fp)
	if err != nil {
		t.Fatalf("NewGPGSigner: %v", err)
	}
	a := testAction()
	if err := SignAction(a, s); err != nil {
		t.Fatalf("SignAction: %v", err)
	}
	issuer, err := issuerOf(a.PGPSignatures[0])
	if err != nil {
		t.Fatal(err)
	}
	if primary, _ := keyIDOfFingerprint(fp); issuer == primary {
		t.Fatalf("gpg signed with the primary key %016X, want its signing subkey", issuer)
	}
	got, err := VerifyAction(a, k)
	if err != nil || !slices.Equal(got, []string{fp}) {
		t.Errorf("VerifyAction(subkey signature) = %v, %v; want the primary fingerprint [%s]", got, err, fp)
	}
}

func TestGPGAcceptsGeneratedKey(t *testing.T) {
	g := newGnuPG(t)
	priv, pub, fp, err := GenerateKey("Dev Investigator", "dev@example.com")
	if err != nil {
		t.Fatal(err)
	}
	g.run(pub, "--import")

	// A signature made in Go verifies in gpg.
	s, err := NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testAction()
	if err := SignAction(a, s); err != nil {
		t.Fatal(err)
	}
	enc, err := a.Encoding()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	encPath, sigPath := filepath.Join(dir, "action.enc"), filepath.Join(dir, "action.sig")
	if err := os.WriteFile(encPath, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigPath, []byte(a.PGPSignatures[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	status, err := g.try(nil, "--status-fd", "1", "--verify", sigPath, encPath)
	if err != nil {
		t.Fatalf("gpg --verify: %v", err)
	}
	if !bytes.Contains(status, []byte("[GNUPG:] VALIDSIG "+fp)) {
		t.Errorf("gpg --verify status has no VALIDSIG %s:\n%s", fp, status)
	}
	// And gpg refuses it over other data.
	if err := os.WriteFile(encPath, append(enc, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := g.try(nil, "--verify", sigPath, encPath); err == nil {
		t.Errorf("gpg --verify accepted the signature over altered data")
	}

	// The private key works in gpg too.
	g.run(priv, "--import")
	gs, err := NewGPGSigner(g.path, g.home, fp)
	if err != nil {
		t.Fatalf("NewGPGSigner(imported generated key): %v", err)
	}
	k, err := ReadKeyring(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	b := testAction()
	if err := SignAction(b, gs); err != nil {
		t.Fatalf("SignAction(gpg): %v", err)
	}
	if got, err := VerifyAction(b, k); err != nil || !slices.Equal(got, []string{fp}) {
		t.Errorf("VerifyAction = %v, %v; want [%s]", got, err, fp)
	}
}

func TestParseColonsKey(t *testing.T) {
	const fp = "0123456789ABCDEF0123456789ABCDEF01234567"
	pub := func(validity, caps string) string {
		return "pub:" + validity + ":255:22:89ABCDEF01234567:1700000000:::u:::" + caps + ":::::ed25519:::0:\n" +
			"fpr:::::::::" + fp + ":\n" +
			"uid:u::::1700000000::HASH::Test <t@example.com>::::::::::0:\n"
	}
	sub := "sub:u:255:18:1111111111111111:1700000000::::::e:::::cv25519::\n" +
		"fpr:::::::::AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:\n"
	tests := []struct {
		name string
		out  string
		want string // "" for an error
	}{
		{"one key", "tru::1:1700000000:0:3:1:5\n" + pub("u", "scSC") + sub, fp},
		{"subkey fingerprint ignored", pub("u", "cSC") + sub, fp},
		{"no key", "tru::1:1700000000:0:3:1:5\n", ""},
		{"two keys", pub("u", "scSC") + pub("u", "scSC"), ""},
		{"revoked", pub("r", "scSC"), ""},
		{"expired", pub("e", "scSC"), ""},
		{"cannot sign", pub("u", "cC"), ""},
		{"short fingerprint", strings.Replace(pub("u", "scSC"), fp, "ABCD", 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseColonsKey([]byte(tt.out), "t@example.com")
			if tt.want == "" {
				if !errors.Is(err, ErrBadKey) {
					t.Errorf("parseColonsKey = %q, %v; want error %v", got, err, ErrBadKey)
				}
				return
			}
			if got != tt.want || err != nil {
				t.Errorf("parseColonsKey = %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}
