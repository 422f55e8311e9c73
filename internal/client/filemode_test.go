//go:build unix

package client

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/secfile"
)

// TestClientFileModes checks what mig refuses to use: a configuration others
// could change, or read when it holds a secret; a signing key others could
// read; a CA others could change; each error naming the file, its mode and
// the fix.
func TestClientFileModes(t *testing.T) {
	dir := t.TempDir()
	keyFile, _, _ := writeKey(t, dir)
	caFile := writeFile(t, dir, "ca.pem", "")
	plain := `{"api":{"url":"https://127.0.0.1:12664/api/v1"},"signer":{"keyfile":"` + keyFile + `"}}`
	withKey := `{"api":{"url":"https://127.0.0.1:12664/api/v1"},"apikey":"` + testAPIKey + `"}`
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		wantErr []string // substrings; none: loads
	}{
		{"plain 0644", plain, 0o644, nil},
		{"plain 0600", plain, 0o600, nil},
		{"plain group-writable", plain, 0o664, []string{"client configuration", "mode 0664", "chmod go-w"}},
		{"plain world-writable", plain, 0o646, []string{"mode 0646"}},
		{"api key 0600", withKey, 0o600, nil},
		{"api key 0644", withKey, 0o644, []string{"holds apikey", "mode 0644", "chmod 600", "mig apikey revoke"}},
		{"api key 0640", withKey, 0o640, []string{"mode 0640"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "migrc", tt.content)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("LoadConfig: %v, want none", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !errors.Is(err, secfile.ErrUnsafe) {
				t.Fatalf("LoadConfig: %v, want ErrConfig and ErrUnsafe", err)
			}
			for _, w := range append(tt.wantErr, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadConfig: %q, want it to say %q", err, w)
				}
			}
		})
	}

	cfg := Config{API: APIConfig{URL: "https://127.0.0.1:12664/api/v1"}, Signer: SignerConfig{KeyFile: keyFile}}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(keyFile, mode); err != nil {
			t.Fatal(err)
		}
		_, err := New(cfg)
		if !errors.Is(err, secfile.ErrUnsafe) || !strings.Contains(err.Error(), "signer.keyfile "+keyFile) ||
			!strings.Contains(err.Error(), "chmod 600 "+keyFile) {
			t.Errorf("key file mode %04o: %v, want a refusal naming the file and the fix", mode, err)
		}
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err != nil {
		t.Fatalf("key file 0600: %v", err)
	}
	cfg.API.CA = caFile
	if err := os.Chmod(caFile, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); !errors.Is(err, secfile.ErrUnsafe) || !strings.Contains(err.Error(), "api.ca "+caFile) {
		t.Errorf("CA mode 0666: %v, want a refusal", err)
	}
	// The key's directory: others who can write it can replace the key.
	if err := os.Chmod(caFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); !errors.Is(err, secfile.ErrUnsafe) || !strings.Contains(err.Error(), "is in "+dir) {
		t.Errorf("key in a world-writable directory: %v, want a refusal", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestUserDir checks that ~/.mig is made 0700, and made 0700 again, with
// the old mode reported, when it was open.
func TestUserDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir, was, err := UserDir()
	if err != nil || was != 0 || dir != filepath.Join(home, ".mig") {
		t.Fatalf("UserDir() = %q, %04o, %v", dir, was, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("~/.mig: %v (%v), want mode 0700", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, was, err := UserDir(); err != nil || was != 0o755 {
		t.Errorf("UserDir() on a 0755 ~/.mig: was %04o, %v; want 0755 reported", was, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("~/.mig is mode %04o after UserDir, want 0700", fi.Mode().Perm())
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, _, err := UserDir(); !errors.Is(err, secfile.ErrUnsafe) {
			t.Errorf("UserDir() on another user's ~/.mig: %v, want a refusal", err)
		}
	}
}
