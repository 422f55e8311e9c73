package pkg

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
	"github.com/migplatform/mig/internal/pkgdb"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunFixture(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the pkg module reads Linux package databases")
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusPath), `Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2

Package: libssl1.1
Status: deinstall ok config-files
Architecture: amd64
Version: 1.1.1n-0+deb11u5

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
`)
	writeFile(t, filepath.Join(root, pkgdb.APKInstalledPath), "P:libssl3\nV:3.1.4-r1\nA:aarch64\no:openssl\n\nP:zlib\nV:1.3-r0\nA:aarch64\n")
	for _, tc := range []struct {
		name   string
		params string
		want   []pkgdb.Package
	}{
		{"ssl any version", `{"pkgmatch":{"matches":["ssl"]}}`, []pkgdb.Package{
			{Name: "libssl3", Version: "3.1.4-r1", Arch: "aarch64", Type: "apk", Source: "openssl"},
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Arch: "amd64", Type: "dpkg", Source: "openssl"},
			{Name: "openssl", Version: "3.0.11-1~deb12u2", Arch: "amd64", Type: "dpkg"},
		}},
		{"two names and a version", `{"pkgmatch":{"matches":["^bash$","^zlib$"]},"vermatch":"^1\\.3"}`, []pkgdb.Package{
			{Name: "zlib", Version: "1.3-r0", Arch: "aarch64", Type: "apk"},
		}},
		{"nothing", `{"pkgmatch":{"matches":["^libssl1\\.1$"]}}`, []pkgdb.Package{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseParameters([]byte(tc.params))
			if err != nil {
				t.Fatal(err)
			}
			r.root = root
			res := r.Run(t.Context(), module.Env{})
			if !res.Success || len(res.Errors) != 0 {
				t.Fatalf("Run = %+v, want success without errors", res)
			}
			var el Elements
			if err := json.Unmarshal(res.Elements, &el); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, el.Packages); d != "" {
				t.Errorf("packages (-want +got):\n%s", d)
			}
			if res.FoundAnything != (len(tc.want) > 0) {
				t.Errorf("FoundAnything = %v, want %v", res.FoundAnything, len(tc.want) > 0)
			}
			var st Statistics
			if err := json.Unmarshal(res.Statistics, &st); err != nil {
				t.Fatal(err)
			}
			if want := (Statistics{Installed: 5, Matched: len(tc.want)}); st != want {
				t.Errorf("statistics = %+v, want %+v", st, want)
			}
		})
	}
	r, err := ParseParameters([]byte(`{"pkgmatch":{"matches":["."]}}`))
	if err != nil {
		t.Fatal(err)
	}
	r.root = t.TempDir()
	if res := r.Run(t.Context(), module.Env{}); res.Success || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "no package database") {
		t.Errorf("Run on an empty root = %+v, want a failure saying there is no database", res)
	}
}

// TestRunThisMachine looks up dpkg itself on this machine and compares with
// dpkg-query.
func TestRunThisMachine(t *testing.T) {
	q, err := exec.LookPath("dpkg-query")
	if err != nil || runtime.GOOS != "linux" {
		t.Skip("dpkg-query not installed")
	}
	out, err := exec.CommandContext(t.Context(), q, "-W", "-f", "${Version} ${Architecture}", "dpkg").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	r, err := ParseParameters([]byte(`{"pkgmatch":{"matches":["^dpkg$"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(t.Context(), module.Env{})
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	want := []pkgdb.Package{{Name: "dpkg", Version: f[0], Arch: f[1], Type: "dpkg"}}
	for i := range el.Packages {
		el.Packages[i].Source = ""
	}
	if d := cmp.Diff(want, el.Packages); d != "" || !res.FoundAnything {
		t.Errorf("Run -name ^dpkg$ (-want +got):\n%s\nresult %+v", d, res)
	}
}

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("pkg module is not registered")
	}
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{[]string{"-name", "^openssl$", "-name", "libssl", "-version", "^3"}, `{"pkgmatch":{"matches":["^openssl$","libssl"]},"vermatch":"^3"}`, ""},
		{[]string{"-name", "bash"}, `{"pkgmatch":{"matches":["bash"]}}`, ""},
		{nil, "", "no package name regex"},
		{[]string{"-name", "(ssl"}, "", `name regex "(ssl"`},
		{[]string{"-name", "a", "-version", "[3"}, "", `version regex "[3"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("pkg", flag.ContinueOnError)
			build := module.SetFlags(m, fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, r, err := build()
			if (err == nil) != (r != nil) {
				t.Errorf("build() runner = %v with error %v, want a runner exactly when there is no error", r, err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidParameters) {
					t.Errorf("build error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("build = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseParametersErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"pkgmatch":{"matches":["a"]},"extra":1}`, "unknown field"},
		{`{"pkgmatch":{"matches":[""]}}`, "empty name regex"},
		{`{"pkgmatch":{"matches":["` + strings.Repeat("a", MaxRegexBytes+1) + `"]}}`, "at most"},
		{`{"pkgmatch":{"matches":["a"]}} {}`, "data after"},
		{`{"pkgmatch":{"Matches":["a"]}}`, `"Matches"`},
		{`[]`, "cannot unmarshal"},
	} {
		if _, err := ParseParameters([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidParameters) {
			t.Errorf("ParseParameters(%.40s) error = %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	el, err := json.Marshal(Elements{Packages: []pkgdb.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", Arch: "amd64", Type: "dpkg", Source: "openssl"},
		{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Arch: "x86_64", Type: "rpm"},
		{Name: "gpg-pubkey", Version: "fd431d51-4ae0493b", Type: "rpm"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := m.PrintResult(&got, "web1.example.net", action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
		t.Fatal(err)
	}
	if err := m.PrintResult(&got, "db2.example.net", action.Result{Success: true}); err != nil {
		t.Fatal(err)
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{
		`{"pkgmatch":{"matches":["^openssl$","libssl"]},"vermatch":"^3"}`,
		`{"pkgmatch":{"matches":[]}}`,
		`{"pkgmatch":{"matches":["("]}}`,
		`{"vermatch":"x"}`,
		`null`, ``,
	} {
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
		if len(r.names) == 0 {
			t.Errorf("parameters %q accepted without a name regex", data)
		}
		var p Parameters
		if err := json.Unmarshal(data, &p); err != nil {
			t.Errorf("accepted parameters %q do not decode: %v", data, err)
		}
	})
}

// TestRunRPMFormats runs the module over roots holding RPM's older
// databases: BerkeleyDB Packages (RHEL 7 and 8) and ndb Packages.db (SUSE),
// from the fixtures internal/pkgdb checks against rpm itself.
func TestRunRPMFormats(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the pkg module reads Linux package databases")
	}
	for _, tc := range []struct{ fixture, dest string }{
		{"bdb-hash-le-512/Packages", "var/lib/rpm/Packages"},
		{"bdb-btree-be-512/Packages", "var/lib/rpm/Packages"},
		{"ndb/Packages.db", "usr/lib/sysimage/rpm/Packages.db"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "pkgdb", "testdata", "rpm", tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			writeFile(t, filepath.Join(root, tc.dest), string(b))
			r, err := ParseParameters([]byte(`{"pkgmatch":{"matches":["^kernel$"]}}`))
			if err != nil {
				t.Fatal(err)
			}
			r.root = root
			res := r.Run(t.Context(), module.Env{})
			if !res.Success || len(res.Errors) != 0 || !res.FoundAnything {
				t.Fatalf("Run = %+v, want the kernel package found without errors", res)
			}
			var el Elements
			if err := json.Unmarshal(res.Elements, &el); err != nil {
				t.Fatal(err)
			}
			want := []pkgdb.Package{{Name: "kernel", Version: "0:3.10.0-1160.119.1.el7", Arch: "x86_64", Type: "rpm", Source: "kernel-3.10.0-1160.119.1.el7.src.rpm"}}
			if d := cmp.Diff(want, el.Packages); d != "" {
				t.Errorf("packages (-want +got):\n%s", d)
			}
		})
	}
}
