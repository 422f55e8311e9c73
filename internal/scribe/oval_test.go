package scribe

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func convertFile(t *testing.T, name string) *Conversion {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ConvertOVAL(f)
	if err != nil {
		t.Fatalf("ConvertOVAL(%s): %v", name, err)
	}
	return c
}

func TestConvertOVALGolden(t *testing.T) {
	for _, name := range []string{"ubuntu-jammy-oval.xml", "rhel7-oval.xml", "rhel8-oval.xml"} {
		t.Run(name, func(t *testing.T) {
			c := convertFile(t, name)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(c); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := filepath.Join("testdata", strings.TrimSuffix(name, ".xml")+".policy.golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("conversion differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

// TestConvertOVALUbuntuEvaluates evaluates the converted Ubuntu policy on
// a jammy machine with an old NSS, a jammy machine with a fixed one, and a
// Debian machine.
func TestConvertOVALUbuntuEvaluates(t *testing.T) {
	c := convertFile(t, "ubuntu-jammy-oval.xml")
	raw, err := json.Marshal(c.Document)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(raw)
	if err != nil {
		t.Fatalf("converted policy does not parse: %v", err)
	}
	jammy := writeTree(t, map[string]string{"etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\n"})
	bookworm := writeTree(t, map[string]string{"etc/os-release": "ID=debian\n"})
	old := PackageList{
		{Name: "libnss3", Version: "2:3.68.2-0ubuntu1.1", Arch: "amd64", Type: TypeDpkg},
		{Name: "libnss3-tools", Version: "2:3.68.2-0ubuntu1.2", Arch: "amd64", Type: TypeDpkg},
		{Name: "zlib1g", Version: "1:1.2.11.dfsg-2ubuntu9.2", Arch: "amd64", Type: TypeDpkg},
	}
	fixed := PackageList{{Name: "libnss3", Version: "2:3.68.2-0ubuntu1.2", Arch: "amd64", Type: TypeDpkg}}
	for _, tt := range []struct {
		name string
		root string
		pkgs PackageList
		want []string // true tests
	}{
		{"jammy vulnerable", jammy, old, []string{"oval:com.ubuntu.jammy:tst:100", "USN-5872-1 libnss3", "USN-6000-1 zlib1g"}},
		{"jammy fixed", jammy, fixed, []string{"oval:com.ubuntu.jammy:tst:100"}},
		{"not jammy", bookworm, old, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := p.Evaluate(t.Context(), Env{Root: tt.root, Packages: tt.pkgs})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range OnlyTrue(res) {
				got = append(got, r.TestID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("true tests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertOVALRedHatEvaluates(t *testing.T) {
	c := convertFile(t, "rhel7-oval.xml")
	p, err := Compile(c.Document)
	if err != nil {
		t.Fatal(err)
	}
	server7 := PackageList{
		{Name: "redhat-release-server", Version: "7.9-6.el7", Arch: "x86_64", Type: TypeRPM},
		{Name: "openssl", Version: "1:1.0.2k-16.el7", Arch: "x86_64", Type: TypeRPM},
		{Name: "openssl-libs", Version: "1:1.0.2k-19.el7", Arch: "x86_64", Type: TypeRPM},
	}
	server8 := PackageList{
		{Name: "redhat-release", Version: "8.9-0.1.el8", Arch: "x86_64", Type: TypeRPM},
		{Name: "openssl", Version: "1:1.0.2k-16.el7", Arch: "x86_64", Type: TypeRPM},
	}
	for _, tt := range []struct {
		name string
		pkgs PackageList
		want []string
	}{
		{"rhel 7 server", server7, []string{"oval:com.redhat.rhba:tst:20150364001", "RHSA-2019:1181 openssl"}},
		{"rhel 8", server8, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, trueTests(t, p, tt.pkgs)); diff != "" {
				t.Errorf("true tests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConvertOVALRedHat8Evaluates evaluates the policy converted from
// Red Hat's OVAL v2 shape, whose release check is an rpmverifyfile_test
// (RHEL 8 or RHEL CoreOS 4), on machines of several releases.
func TestConvertOVALRedHat8Evaluates(t *testing.T) {
	c := convertFile(t, "rhel8-oval.xml")
	p, err := Compile(c.Document)
	if err != nil {
		t.Fatal(err)
	}
	oldSSL := []Package{
		{Name: "openssl", Version: "1:1.1.1k-7.el8_6", Arch: "x86_64", Type: TypeRPM},
		{Name: "openssl-libs", Version: "1:1.1.1k-9.el8_7", Arch: "x86_64", Type: TypeRPM},
	}
	with := func(release Package) PackageList { return append(PackageList{release}, oldSSL...) }
	const gate = "oval:com.redhat.rhba:tst:20191992003"
	for _, tt := range []struct {
		name string
		pkgs PackageList
		want []string
	}{
		{"rhel 8", with(Package{Name: "redhat-release", Version: "8.9-0.1.el8", Arch: "x86_64", Type: TypeRPM}),
			[]string{gate, "RHSA-2023:1405 openssl"}},
		{"rhel coreos 4", with(Package{Name: "redhat-release-coreos", Version: "4.13-1.el8", Arch: "x86_64", Type: TypeRPM}),
			[]string{gate, "RHSA-2023:1405 openssl"}},
		{"rhel 9", with(Package{Name: "redhat-release", Version: "9.3-0.5.el9", Arch: "x86_64", Type: TypeRPM}), nil},
		{"no release package", PackageList(oldSSL), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, trueTests(t, p, tt.pkgs)); diff != "" {
				t.Errorf("true tests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertOVALErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"not XML", "{}", "EOF"},
		{"other root", "<html></html>", "oval_definitions"},
		{"no definitions", `<oval_definitions><definitions/></oval_definitions>`, "no package test"},
		{"only unsupported", `<oval_definitions><definitions><definition id="d" class="patch"><criteria><criterion test_ref="t"/></criteria></definition></definitions>
		  <tests><registry_test id="t"><object object_ref="o"/></registry_test></tests></oval_definitions>`, "no package test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConvertOVAL(strings.NewReader(tt.in))
			if !errors.Is(err, ErrInvalidOVAL) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ConvertOVAL error = %v, want ErrInvalidOVAL containing %q", err, tt.want)
			}
		})
	}
}

func FuzzConvertOVAL(f *testing.F) {
	for _, name := range []string{"ubuntu-jammy-oval.xml", "rhel7-oval.xml", "rhel8-oval.xml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`<oval_definitions><definitions><definition id="d" class="patch"><criteria operator="OR"><criteria/></criteria></definition></definitions></oval_definitions>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ConvertOVAL(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever converts is a valid policy.
		raw, err := json.Marshal(c.Document)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(raw); err != nil {
			t.Errorf("converted policy refused: %v", err)
		}
	})
}

// trueTests evaluates p against pkgs and returns the IDs of its true tests.
func trueTests(t *testing.T, p *Policy, pkgs PackageList) []string {
	t.Helper()
	res, err := p.Evaluate(t.Context(), Env{Packages: pkgs})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range OnlyTrue(res) {
		got = append(got, r.TestID)
	}
	return got
}
