//go:build unix

package secfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	must(t, os.WriteFile(path, []byte("x"), 0o600))
	must(t, os.Chmod(path, mode))
}

func TestCheck(t *testing.T) {
	secret := Rule{What: "api.key", Kind: Secret}
	public := Rule{What: "api.cert", Kind: Public}
	tests := []struct {
		name    string
		mode    fs.FileMode
		dirMode fs.FileMode
		rule    Rule
		link    bool
		wantErr []string // substrings; none: no error
	}{
		{name: "secret 0600", mode: 0o600, dirMode: 0o700, rule: secret},
		{name: "secret 0400", mode: 0o400, dirMode: 0o755, rule: secret},
		{name: "secret 0640", mode: 0o640, dirMode: 0o700, rule: secret, wantErr: []string{"api.key", "mode 0640", "chmod 600"}},
		{name: "secret 0604", mode: 0o604, dirMode: 0o700, rule: secret, wantErr: []string{"mode 0604"}},
		{name: "secret 0620", mode: 0o620, dirMode: 0o700, rule: secret, wantErr: []string{"mode 0620"}},
		{name: "secret advice", mode: 0o644, dirMode: 0o700, rule: Rule{What: "k", Kind: Secret, Otherwise: "make a new key"},
			wantErr: []string{"if it can still be trusted, chmod 600", "otherwise make a new key"}},
		{name: "public 0644", mode: 0o644, dirMode: 0o755, rule: public},
		{name: "public 0664", mode: 0o664, dirMode: 0o755, rule: public, wantErr: []string{"api.cert", "mode 0664", "chmod go-w"}},
		{name: "public 0646", mode: 0o646, dirMode: 0o755, rule: public, wantErr: []string{"mode 0646"}},
		{name: "dir group-writable", mode: 0o600, dirMode: 0o770, rule: secret, wantErr: []string{"which is mode 0770", "chmod go-w"}},
		{name: "dir world-writable", mode: 0o644, dirMode: 0o777, rule: public, wantErr: []string{"which is mode 0777"}},
		{name: "dir sticky world-writable", mode: 0o600, dirMode: 0o777 | fs.ModeSticky, rule: secret},
		{name: "own file: directory not checked", mode: 0o600, dirMode: 0o777, rule: Rule{What: "k", Kind: Secret, Own: true}},
		{name: "link followed", mode: 0o600, dirMode: 0o700, rule: secret, link: true},
		{name: "link to an open file", mode: 0o644, dirMode: 0o700, rule: secret, link: true, wantErr: []string{"mode 0644"}},
		{name: "own file: link refused", mode: 0o600, dirMode: 0o700, rule: Rule{What: "k", Kind: Secret, Own: true}, link: true,
			wantErr: []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			must(t, os.Mkdir(dir, 0o700))
			path := filepath.Join(dir, "f")
			write(t, path, tt.mode)
			if tt.link {
				link := filepath.Join(dir, "link")
				must(t, os.Symlink(path, link))
				path = link
			}
			must(t, os.Chmod(dir, tt.dirMode))
			err := Check(path, tt.rule)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Check: %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Check: %v, want ErrUnsafe", err)
			}
			for _, w := range append(tt.wantErr, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check: %q, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestCheckMissingAndNotRegular(t *testing.T) {
	dir := t.TempDir()
	if err := Check(filepath.Join(dir, "missing"), Rule{What: "k", Kind: Secret}); err != nil {
		t.Errorf("missing file: %v, want none (reading it reports it)", err)
	}
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o700))
	must(t, os.Chmod(open, 0o777))
	if err := Check(filepath.Join(open, "missing"), Rule{What: "k", Kind: Secret}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("missing file in a world-writable directory: %v, want a refusal (it is about to be made there)", err)
	}
	if err := Check(filepath.Join(dir, "nodir", "missing"), Rule{What: "k", Kind: Secret}); err != nil {
		t.Errorf("missing directory: %v, want none (reading it reports it)", err)
	}
	if err := Check(dir, Rule{What: "k", Kind: Secret}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v, want a refusal", err)
	}
}

// TestCheckLinkTargetDirectory checks that the directory of a link's target
// is checked too: whoever can write there can replace the file.
func TestCheckLinkTargetDirectory(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	must(t, os.Mkdir(open, 0o700))
	target := filepath.Join(open, "key")
	write(t, target, 0o600)
	must(t, os.Chmod(open, 0o777))
	link := filepath.Join(base, "key")
	must(t, os.Symlink(target, link))
	if err := Check(link, Rule{What: "k", Kind: Secret}); err == nil || !strings.Contains(err.Error(), "is in "+open) {
		t.Errorf("link into a world-writable directory: %v, want a refusal naming it", err)
	}
}

func TestCheckOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, 0o600)
	must(t, os.Chown(path, 65534, 65534))
	if err := Check(path, Rule{What: "k", Kind: Secret}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("file of another user: %v, want a refusal", err)
	}
	must(t, os.Chown(path, 0, 0))
	sub := filepath.Join(dir, "sub")
	must(t, os.Mkdir(sub, 0o755))
	write(t, filepath.Join(sub, "f"), 0o644)
	must(t, os.Chown(sub, 65534, 65534))
	if err := Check(filepath.Join(sub, "f"), Rule{What: "k", Kind: Public}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("directory of another user: %v, want a refusal", err)
	}
}

func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b")
	was, err := PrivateDir(dir)
	if err != nil || was != 0 {
		t.Fatalf("PrivateDir(new) = %v, %v", was, err)
	}
	for _, d := range []string{filepath.Join(base, "a"), dir} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
	must(t, os.Chmod(dir, 0o755))
	if was, err := PrivateDir(dir); err != nil || was != 0o755 {
		t.Errorf("PrivateDir(0755) = %04o, %v; want 0755 reported", was, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("after PrivateDir: mode %04o, want 0700", fi.Mode().Perm())
	}
	must(t, os.Chmod(dir, 0o500))
	if was, err := PrivateDir(dir); err != nil || was != 0 {
		t.Errorf("PrivateDir(0500) = %04o, %v; want it fixed quietly", was, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("after PrivateDir: mode %04o, want 0700", fi.Mode().Perm())
	}
	f := filepath.Join(base, "file")
	write(t, f, 0o600)
	if _, err := PrivateDir(f); err == nil {
		t.Error("PrivateDir(a file): no error")
	}
	if os.Geteuid() == 0 {
		must(t, os.Chown(dir, 65534, 65534))
		if _, err := PrivateDir(dir); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("PrivateDir(another user's) = %v, want a refusal", err)
		}
	}
}
