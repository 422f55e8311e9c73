package agentkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/secfile"
)

func newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestSetRoundTrip(t *testing.T) {
	var s Set
	names := []string{"web01", "db 02", `"quoted"`, "#hash", "tab\there", "é", "a\x01b"}
	keys := map[string]ed25519.PublicKey{}
	for _, n := range names {
		keys[n] = newKey(t)
		if err := s.Pin(n, keys[n]); err != nil {
			t.Fatalf("Pin(%q): %v", n, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "home", ".mig")
	path := filepath.Join(dir, "agentkeys")
	if err := s.Save(path); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %o, want %o", p, got, want)
		}
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Len() != len(names) {
		t.Fatalf("Load: %d pins, want %d", got.Len(), len(names))
	}
	for n, k := range keys {
		if st := got.Check(n, k); st != Match {
			t.Errorf("Check(%q, its key) = %v, want Match", n, st)
		}
		if st := got.Check(n, newKey(t)); st != Changed {
			t.Errorf("Check(%q, another key) = %v, want Changed", n, st)
		}
	}
	if st := got.Check("nobody", newKey(t)); st != Unpinned {
		t.Errorf("Check of an unknown name = %v, want Unpinned", st)
	}
	if !got.Forget("web01") || got.Forget("web01") || got.Check("web01", keys["web01"]) != Unpinned {
		t.Errorf("Forget does not forget once")
	}
	if s, err := Load(filepath.Join(t.TempDir(), "missing")); err != nil || s.Len() != 0 {
		t.Errorf("Load of a missing file = %v, %v; want an empty set", s, err)
	}
	// Readable by others is fine (public keys); writable by others is not:
	// whoever can change a pin can make a forged result verify.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load of a 0644 pin file: %v", err)
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, secfile.ErrUnsafe) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a group-writable pin file = %v; want secfile.ErrUnsafe naming it", err)
	}
}

func TestParseErrors(t *testing.T) {
	key := newKey(t)
	b64 := base64.StdEncoding.EncodeToString(key)
	id := action.AgentID(key)
	tests := []struct {
		name, data, want string
	}{
		{"two fields", "web01 " + id + "\n", "got 1 fields"},
		{"four fields", "web01 " + id + " " + b64 + " x\n", "got 3 fields"},
		{"bad key", "web01 " + id + " notbase64\n", "not a base64 Ed25519"},
		{"short key", "web01 " + id + " " + base64.StdEncoding.EncodeToString(key[:31]) + "\n", "not a base64 Ed25519"},
		{"wrong id", "web01 " + strings.Repeat("0", 32) + " " + b64 + "\n", "its key is that of agent " + id},
		{"twice", "a " + id + " " + b64 + "\n# c\na " + id + " " + b64 + "\n", "line 3: agent \"a\" is pinned twice"},
		{"bad quote", `"web01 ` + id + " " + b64 + "\n", "bad quoted name"},
		{"no space after quote", `"web"01 ` + id + " " + b64 + "\n", "no space after the quoted name"},
		{"empty quoted", `"" ` + id + " " + b64 + "\n", "empty agent name"},
		{"not utf-8", "w\xffb " + id + " " + b64 + "\n", "not UTF-8"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.data))
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want ErrSyntax with %q", tt.name, err, tt.want)
		}
	}
	s, err := Parse([]byte("\n# comment\n  web01\t" + id + "  " + b64 + "\r\n"))
	if err != nil || s.Check("web01", key) != Match {
		t.Errorf("Parse with blanks, tabs and CRLF = %v, %v", s, err)
	}
}

// FuzzParse: Parse never panics, and what it accepts, Marshal writes back
// in a form Parse reads to the same pins.
func FuzzParse(f *testing.F) {
	key := newKey(f)
	var s Set
	_ = s.Pin("web01", key)
	_ = s.Pin("db 02", key)
	f.Add(s.Marshal())
	f.Add([]byte(`"a\x00" ` + action.AgentID(key) + " " + base64.StdEncoding.EncodeToString(key)))
	f.Add([]byte("# only a comment\n\n"))
	f.Add([]byte("x y z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse error does not wrap ErrSyntax: %v", err)
			}
			return
		}
		out := s.Marshal()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		if !bytes.Equal(again.Marshal(), out) || again.Len() != s.Len() {
			t.Fatalf("pins change through Marshal and Parse:\n%s\n%s", out, again.Marshal())
		}
		for _, n := range s.Names() {
			k, _ := s.Get(n)
			if again.Check(n, k) != Match {
				t.Fatalf("pin of %q lost through Marshal and Parse", n)
			}
		}
	})
}
