package manifest

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/sign"
)

type investigator struct {
	signer sign.Signer
	public []byte
}

var (
	keysOnce sync.Once
	keys     []investigator
	keysErr  error
)

// investigators returns three test investigators, made once.
func investigators(t *testing.T) []investigator {
	t.Helper()
	keysOnce.Do(func() {
		for _, n := range []string{"Alice", "Bob", "Carol"} {
			priv, pub, _, err := sign.GenerateKey(n, strings.ToLower(n)+"@example.com")
			if err != nil {
				keysErr = err
				return
			}
			s, err := sign.NewKeySigner(priv, nil)
			if err != nil {
				keysErr = err
				return
			}
			keys = append(keys, investigator{s, pub})
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

func keyring(t *testing.T, invs ...investigator) *sign.Keyring {
	t.Helper()
	var all []byte
	for _, i := range invs {
		all = append(all, i.public...)
	}
	k, err := sign.ReadKeyring(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// loaderACL gives each investigator weight 1 in a manifest entry of min.
func loaderACL(min int, invs ...investigator) acl.ACL {
	p := acl.Permission{MinimumWeight: min, Investigators: map[string]acl.Investigator{}}
	for i, inv := range invs {
		p.Investigators[string(rune('a'+i))] = acl.Investigator{Fingerprint: inv.signer.Fingerprint(), Weight: 1}
	}
	return acl.ACL{ACLEntry: p}
}

var created = time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)

func testManifest() *Manifest {
	return &Manifest{
		Name: "prod", Serial: 7, OS: "linux", Arch: "amd64",
		Created: created, Expires: created.Add(30 * 24 * time.Hour),
		Files: []File{{Role: RoleAgent, Version: "1.2.3", SHA256: strings.Repeat("ab", 32), Size: 1234}},
	}
}

func TestSignVerify(t *testing.T) {
	inv := investigators(t)
	m := testManifest()
	for _, i := range inv[:2] {
		if err := Sign(m, i.signer); err != nil {
			t.Fatal(err)
		}
	}
	if err := Sign(m, inv[0].signer); !errors.Is(err, sign.ErrAlreadySigned) {
		t.Fatalf("second signature by one key: %v, want ErrAlreadySigned", err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	k := keyring(t, inv...)
	now := created.Add(time.Hour)
	fps, err := Verify(got, k, loaderACL(2, inv...), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(fps) != 2 {
		t.Fatalf("signers %v, want 2", fps)
	}

	// The weight of one signer is not enough.
	one := testManifest()
	if err := Sign(one, inv[0].signer); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(one, k, loaderACL(2, inv...), now); !errors.Is(err, ErrWeight) {
		t.Fatalf("one of two: %v, want ErrWeight", err)
	}
	// No manifest entry: refused, even with a default entry that would allow it.
	def := acl.ACL{acl.DefaultEntry: loaderACL(1, inv...)[ACLEntry]}
	if _, err := Verify(got, k, def, now); !errors.Is(err, ErrWeight) {
		t.Fatalf("no manifest entry: %v, want ErrWeight", err)
	}
	// A signer unknown to the loader carries no weight and is not fatal.
	if _, err := Verify(got, keyring(t, inv[0], inv[2]), loaderACL(1, inv...), now); err != nil {
		t.Fatalf("one known signer of two, minimum 1: %v", err)
	}
	if _, err := Verify(got, keyring(t, inv[0], inv[2]), loaderACL(2, inv...), now); !errors.Is(err, ErrWeight) {
		t.Fatalf("one known signer of two, minimum 2: %v, want ErrWeight", err)
	}
	// Times.
	if _, err := Verify(got, k, loaderACL(2, inv...), got.Expires.Add(time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v", err)
	}
	if _, err := Verify(got, k, loaderACL(2, inv...), created.Add(-time.Hour)); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("before creation: %v", err)
	}
	// No signatures at all.
	if _, err := Verify(testManifest(), k, loaderACL(1, inv...), now); !errors.Is(err, sign.ErrNoSignature) {
		t.Fatalf("unsigned: %v", err)
	}
}

// TestEverySignedFieldCounts changes each field after signing: the
// signatures no longer verify.
func TestEverySignedFieldCounts(t *testing.T) {
	inv := investigators(t)
	k := keyring(t, inv...)
	changes := map[string]func(*Manifest){
		"name":    func(m *Manifest) { m.Name = "test" },
		"serial":  func(m *Manifest) { m.Serial++ },
		"os":      func(m *Manifest) { m.OS = "darwin" },
		"arch":    func(m *Manifest) { m.Arch = "arm64" },
		"created": func(m *Manifest) { m.Created = m.Created.Add(-time.Second) },
		"expires": func(m *Manifest) { m.Expires = m.Expires.Add(time.Second) },
		"version": func(m *Manifest) { m.Files[0].Version = "1.2.4" },
		"sha256":  func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("cd", 32) },
		"size":    func(m *Manifest) { m.Files[0].Size++ },
		"role":    func(m *Manifest) { m.Files[0].Role = RoleLoader },
		"files": func(m *Manifest) {
			m.Files = append(m.Files, File{Role: RoleLoader, Version: "1", SHA256: strings.Repeat("ef", 32), Size: 1})
		},
	}
	for name, change := range changes {
		m := testManifest()
		if err := Sign(m, inv[0].signer); err != nil {
			t.Fatal(err)
		}
		change(m)
		if _, err := Verify(m, k, loaderACL(1, inv...), created.Add(time.Minute)); !errors.Is(err, sign.ErrBadSignature) {
			t.Errorf("%s changed after signing: %v, want ErrBadSignature", name, err)
		}
	}
}

func TestDomainSeparation(t *testing.T) {
	enc := testManifest().Encoding()
	if !bytes.HasPrefix(enc, []byte(EncodingPrefix)) {
		t.Fatalf("encoding %q lacks the prefix", enc)
	}
	want := EncodingPrefix + `{"arch":"amd64","created":"2026-12-07T18:00:00Z","expires":"2027-01-06T18:00:00Z",` +
		`"files":[{"role":"mig-agent","version":"1.2.3","sha256":"` + strings.Repeat("ab", 32) + `","size":1234}],` +
		`"name":"prod","os":"linux","serial":7}`
	if string(enc) != want {
		t.Fatalf("encoding\n%s\nwant\n%s", enc, want)
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := testManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	g := string(good)
	cases := map[string]string{
		"unknown field":       strings.Replace(g, `"name"`, `"channel": "x", "name"`, 1),
		"duplicate key":       strings.Replace(g, `"name": "prod"`, `"name": "prod", "name": "test"`, 1),
		"case-folded key":     strings.Replace(g, `"name": "prod"`, `"Name": "prod"`, 1),
		"unknown file field":  strings.Replace(g, `"role"`, `"path": "/tmp/x", "role"`, 1),
		"bad name":            strings.Replace(g, `"prod"`, `"Prod!"`, 1),
		"zero serial":         strings.Replace(g, `"serial": 7`, `"serial": 0`, 1),
		"negative serial":     strings.Replace(g, `"serial": 7`, `"serial": -7`, 1),
		"unknown os":          strings.Replace(g, `"linux"`, `"plan9"`, 1),
		"unknown arch":        strings.Replace(g, `"amd64"`, `"mips"`, 1),
		"time with offset":    strings.Replace(g, `2026-12-07T18:00:00Z`, `2026-12-07T19:00:00+01:00`, 1),
		"fractional time":     strings.Replace(g, `2026-12-07T18:00:00Z`, `2026-12-07T18:00:00.5Z`, 1),
		"expires before":      strings.Replace(g, `2027-01-06T18:00:00Z`, `2026-12-06T18:00:00Z`, 1),
		"valid too long":      strings.Replace(g, `2027-01-06T18:00:00Z`, `2029-01-06T18:00:00Z`, 1),
		"bad role":            strings.Replace(g, `"mig-agent"`, `"mig-server"`, 1),
		"bad version":         strings.Replace(g, `"1.2.3"`, `"1.2.3; rm -rf /"`, 1),
		"upper-case sha256":   strings.Replace(g, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1),
		"short sha256":        strings.Replace(g, strings.Repeat("ab", 32), strings.Repeat("ab", 31), 1),
		"zero size":           strings.Replace(g, `"size": 1234`, `"size": 0`, 1),
		"huge size":           strings.Replace(g, `"size": 1234`, `"size": 1073741824`, 1),
		"trailing data":       g + "{}",
		"not an object":       `[]`,
		"empty":               ``,
		"signatures a string": strings.Replace(g, `"signatures": []`, `"signatures": "x"`, 1),
	}
	for name, data := range cases {
		if _, err := Parse([]byte(data)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse = %v, want ErrInvalid", name, err)
		}
	}
	none := testManifest()
	none.Files = nil
	if _, err := none.Marshal(); !errors.Is(err, ErrInvalid) {
		t.Errorf("no files: %v, want ErrInvalid", err)
	}
	two := testManifest()
	two.Files = append(two.Files, two.Files[0])
	if _, err := two.Marshal(); !errors.Is(err, ErrInvalid) {
		t.Errorf("a role twice: %v, want ErrInvalid", err)
	}
	if _, err := Parse(bytes.Repeat([]byte(" "), MaxSize+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("too large: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	good, err := testManifest().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"name":"prod","serial":1,"os":"linux","arch":"arm64","created":"2026-01-01T00:00:00Z","expires":"2026-02-01T00:00:00Z","files":[{"role":"mig-loader","version":"v","sha256":"` + strings.Repeat("0", 64) + `","size":1}],"signatures":["x"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What parses marshals and parses back to the same signed bytes.
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal: %v\n%s", err, out)
		}
		if !bytes.Equal(m.Encoding(), m2.Encoding()) {
			t.Fatalf("encoding changed over a round trip:\n%s\n%s", m.Encoding(), m2.Encoding())
		}
	})
}
