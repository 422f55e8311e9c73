package sshkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
)

func keygen(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ssh-keygen", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
}

// fingerprints returns what ssh-keygen -l prints for a file, per hash:
// "bits fingerprint comment (TYPE)" lines.
func fingerprints(t *testing.T, path, hash string) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ssh-keygen", "-l", "-E", hash, "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l -E %s -f %s: %v", hash, path, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func line(k Key, fp string) string {
	comment := k.Comment
	if comment == "" {
		comment = "no comment"
	}
	return strings.Join([]string{itoa(k.Bits), fp, comment, "(" + k.Type + ")"}, " ")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestKeysMadeBySSHKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	dir := t.TempDir()
	ssh := filepath.Join(dir, "home", "alice", ".ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	keygen(t, "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", filepath.Join(ssh, "id_ed25519"))
	keygen(t, "-t", "rsa", "-b", "2048", "-N", "secret passphrase", "-C", "alice rsa", "-f", filepath.Join(ssh, "id_rsa"))
	keygen(t, "-t", "ecdsa", "-b", "384", "-N", "pem passphrase", "-m", "PEM", "-C", "pem", "-f", filepath.Join(ssh, "id_ecdsa"))
	keygen(t, "-t", "ecdsa", "-N", "pem passphrase", "-m", "PEM", "-f", filepath.Join(dir, "home", "lonely"))
	if err := os.Remove(filepath.Join(dir, "home", "lonely.pub")); err != nil {
		t.Fatal(err)
	}
	pub1, _ := os.ReadFile(filepath.Join(ssh, "id_ed25519.pub"))
	pub2, _ := os.ReadFile(filepath.Join(ssh, "id_rsa.pub"))
	authorized := "# keys of alice\n" + string(pub1) + "\nnot a key at all\n" + `command="/bin/true",no-pty ` + string(pub2)
	if err := os.WriteFile(filepath.Join(ssh, "authorized_keys"), []byte(authorized), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ssh, "known_hosts"), []byte("github.com "+string(pub1)), 0o600); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, "home", "a", "b", "c")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "deep.pub"), pub1, 0o600); err != nil {
		t.Fatal(err)
	}

	raw, _ := json.Marshal(Parameters{Paths: []string{filepath.Join(dir, "home")}, MaxDepth: 3})
	r, err := ParseParameters(raw)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(t.Context(), module.Env{})
	if !res.Success || !res.FoundAnything || len(res.Errors) != 0 {
		t.Fatalf("result %+v, want success with keys", res)
	}
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	byFile := map[string][]Key{}
	for _, k := range el.Keys {
		rel, _ := filepath.Rel(dir, k.Path)
		byFile[rel] = append(byFile[rel], k)
	}
	for _, tc := range []struct {
		file      string
		kind      string
		encrypted bool
		n         int
		compare   string // file given to ssh-keygen -l, "" for no fingerprint
	}{
		{"home/alice/.ssh/id_ed25519", KindPrivate, false, 1, "home/alice/.ssh/id_ed25519"},
		{"home/alice/.ssh/id_ed25519.pub", KindPublic, false, 1, "home/alice/.ssh/id_ed25519.pub"},
		{"home/alice/.ssh/id_rsa", KindPrivate, true, 1, "home/alice/.ssh/id_rsa.pub"},
		{"home/alice/.ssh/id_rsa.pub", KindPublic, false, 1, "home/alice/.ssh/id_rsa.pub"},
		{"home/alice/.ssh/id_ecdsa", KindPrivate, true, 1, "home/alice/.ssh/id_ecdsa.pub"},
		{"home/alice/.ssh/id_ecdsa.pub", KindPublic, false, 1, "home/alice/.ssh/id_ecdsa.pub"},
		{"home/alice/.ssh/authorized_keys", KindAuthorizedKeys, false, 2, "home/alice/.ssh/authorized_keys"},
		{"home/lonely", KindPrivate, true, 1, ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			keys := byFile[tc.file]
			delete(byFile, tc.file)
			if len(keys) != tc.n {
				t.Fatalf("%d keys, want %d: %+v", len(keys), tc.n, keys)
			}
			for _, k := range keys {
				if k.Kind != tc.kind || k.Encrypted != tc.encrypted {
					t.Errorf("key %+v, want kind %s encrypted %v", k, tc.kind, tc.encrypted)
				}
			}
			if tc.compare == "" {
				if keys[0].SHA256 != "" || keys[0].MD5 != "" {
					t.Errorf("key %+v has fingerprints, want none", keys[0])
				}
				return
			}
			for _, hash := range []string{"sha256", "md5"} {
				want := fingerprints(t, filepath.Join(dir, tc.compare), hash)
				var got []string
				for _, k := range keys {
					fp := k.SHA256
					if hash == "md5" {
						fp = k.MD5
					}
					got = append(got, line(k, fp))
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					if tc.kind == KindPrivate {
						// ssh-keygen -l on a .pub prints its comment; compare the rest.
						for i := range want {
							if f := strings.Fields(want[i]); len(f) >= 2 && strings.Fields(got[i])[1] == f[1] && strings.Fields(got[i])[0] == f[0] {
								continue
							}
							t.Errorf("%s: got %q, ssh-keygen prints %q", hash, got[i], want[i])
						}
						continue
					}
					t.Errorf("%s:\ngot  %q\nwant %q (ssh-keygen)", hash, got, want)
				}
			}
		})
	}
	for f, keys := range byFile {
		t.Errorf("unexpected keys in %s: %+v (known_hosts and files below maxdepth are not keys)", f, keys)
	}
}

func TestParseKeysIgnoresNonKeys(t *testing.T) {
	for _, data := range []string{"", "hello\nworld\n", "-----BEGIN CERTIFICATE-----\nabc\n", "\x00\x01\x02ssh-rsa",
		// A program or cache file that only holds the marker text.
		"\x7fELF\x00\x00PRIVATE KEY-----\x00-----BEGIN OPENSSH PRIVATE KEY-----\x00\x00"} {
		if k := ParseKeys("/x", []byte(data)); len(k) != 0 {
			t.Errorf("ParseKeys(%q) = %+v, want no key", data, k)
		}
	}
	k := ParseKeys("/x", []byte("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"))
	if len(k) != 1 || k[0].Kind != KindPrivate || k[0].SHA256 != "" {
		t.Errorf("garbage private key: %+v, want one private key without fingerprint", k)
	}
}

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("sshkey module is not registered")
	}
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{nil, `{}`, ""},
		{[]string{"-path", "/home", "-path", `C:\Users`, "-maxdepth", "3"}, `{"paths":["/home","C:\\Users"],"maxdepth":3}`, ""},
		{[]string{"-path", "home"}, "", `path "home"`},
		{[]string{"-maxdepth", "-1"}, "", "maxdepth -1"},
		{[]string{"-maxdepth", "100000"}, "", "maxdepth 100000"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet(Name, flag.ContinueOnError)
			build := module.SetFlags(m, fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, r, err := build()
			if (err == nil) != (r != nil) {
				t.Errorf("build() runner = %v with error %v, want a runner exactly when there is no error", r, err)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidParameters) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("build error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("build = %s, %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	el, _ := json.Marshal(Elements{Keys: []Key{
		{Path: "/home/alice/.ssh/authorized_keys", Kind: KindAuthorizedKeys, Type: "ED25519", Bits: 256, SHA256: "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8", MD5: "MD5:d6:d6:3b:7c:3c:2a:5e:59:4f:a6:2f:cb:8a:1b:4d:23", Comment: "bob@laptop"},
		{Path: "/home/alice/.ssh/id_rsa", Kind: KindPrivate, Type: "RSA", Bits: 3072, SHA256: "SHA256:3ZqL9rNQ9UGv6e0h2mZpmxqNSBZ6F3+XaBJX6lQ2H0o", MD5: "MD5:12:f8:7e:78:61:b4:bf:e2:de:24:15:96:4e:d4:72:53", Encrypted: true},
		{Path: "/root/lonely", Kind: KindPrivate, Encrypted: true},
	}})
	var got bytes.Buffer
	if err := m.PrintResult(&got, "web1.example.net", action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
		t.Fatal(err)
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{`{}`, `{"paths":["/home","C:\\Users"],"maxdepth":3}`, `{"paths":["x"]}`, `{"maxdepth":-1}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseParameters(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidParameters) || r != nil {
				t.Errorf("error %v (runner %v) does not wrap ErrInvalidParameters", err, r)
			}
			return
		}
		if len(r.paths) == 0 || r.maxDepth < 1 || r.maxDepth > MaxMaxDepth {
			t.Errorf("parameters %q accepted as %+v", data, r)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c\n"))
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range ParseKeys("/f/authorized_keys", data) {
			if k.Path != "/f/authorized_keys" || k.Kind == "" {
				t.Errorf("key %+v", k)
			}
		}
	})
}
