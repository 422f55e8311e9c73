package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/scribe"

	_ "github.com/migplatform/mig/internal/module/scribe"
)

func TestScribeConvert(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join("..", "scribe", "testdata", "ubuntu-jammy-oval.xml")
	out := filepath.Join(dir, "policy.json")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   bool     // the policy is on stdout
		stderr   []string // stderr contains each
	}{
		{"to a file", []string{"scribe", "convert", "-i", in, "-o", out}, ExitOK, false, []string{"2 definitions: 5 tests", "skipped: "}},
		{"to stdout, quiet", []string{"scribe", "convert", "-q", in}, ExitOK, true, []string{"checks skipped"}},
		{"red hat", []string{"scribe", "convert", "-q", filepath.Join("..", "scribe", "testdata", "rhel7-oval.xml")}, ExitOK, true,
			[]string{"1 definitions: 3 tests"}},
		{"not OVAL at all", []string{"scribe", "convert", "-i", filepath.Join("testdata", "scribe-local-json.golden")}, ExitUsage, false,
			[]string{"scribe-local-json.golden", "invalid OVAL"}},
		{"no input", []string{"scribe", "convert"}, ExitUsage, false, []string{"-i is required"}},
		{"missing file", []string{"scribe", "convert", "-i", filepath.Join(dir, "nope.xml")}, ExitUsage, false, []string{"nope.xml"}},
		{"not OVAL", []string{"scribe", "convert", "-i", out + ".missing"}, ExitUsage, false, []string{"missing"}},
		{"extra argument", []string{"scribe", "convert", "-i", in, "extra"}, ExitUsage, false, []string{`"extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), w)
				}
			}
			if tt.stdout {
				if _, err := scribe.Parse(stdout.Bytes()); err != nil {
					t.Errorf("stdout is not a policy: %v\n%s", err, stdout.String())
				}
			} else if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scribe.Parse(data); err != nil {
		t.Errorf("-o file is not a policy: %v", err)
	}
}

// TestScribeLocal runs the seed's policy with -t local: the module runs
// inside mig, with no server and no configuration.
func TestScribeLocal(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.json")
	doc := `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"libnss3:amd64","value":"2:3.17.2-1"}]}}],
	  "tests":[{"test":"libnss3 test","object":"o","evr":{"operation":"<","value":"2:3.19.2"}}]}`
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"scribe", "-path", policy, "-t", "local", "-human"}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "test libnss3 test: true") ||
		!strings.Contains(stdout.String(), "[true] libnss3:amd64 2:3.17.2-1") {
		t.Errorf("stdout = %q, want the true test and its candidate", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"objects":[],"tests":[{"test":"t","object":"ghost","noop":{}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code = Main(t.Context(), []string{"scribe", "-path", bad, "-t", "local"}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitUsage || !strings.Contains(stderr.String(), `"ghost"`) {
		t.Errorf("bad policy: exit %d, stderr %q; want %d naming the missing object", code, stderr.String(), ExitUsage)
	}
}

// scribeGoldenPolicy has raw objects only, so that its results are the
// same on every machine: true, false, skipped (if), expectedresult, and a
// test's name, description, aliases and tags.
const scribeGoldenPolicy = `{
  "objects": [
    {"object": "nss", "raw": {"identifiers": [
      {"identifier": "libnss3:amd64", "value": "2:3.17.2-1"},
      {"identifier": "libnss3:i386", "value": "2:3.87.1-1+deb12u2"}]}},
    {"object": "release", "raw": {"identifiers": [{"identifier": "/etc/os-release", "value": "bookworm"}]}}
  ],
  "tests": [
    {"test": "bookworm", "object": "release", "exactmatch": {"value": "bookworm"}},
    {"test": "jammy", "object": "release", "regexp": {"value": "^jammy$"}},
    {"test": "libnss3 test", "object": "nss", "evr": {"operation": "<", "value": "2:3.19.2"}, "if": ["bookworm"],
     "name": "DSA-3231-1", "description": "nss: several vulnerabilities", "aliases": ["CVE-2015-2721", "CVE-2015-2730"],
     "tags": [{"key": "severity", "value": "high"}]},
    {"test": "libnss3 on jammy", "object": "nss", "evr": {"operation": "<", "value": "2:3.19.2"}, "if": ["jammy"]},
    {"test": "no libnss3 from 2015", "object": "nss", "evr": {"operation": "=", "value": "2:3.17.2-1"}, "expectedresult": false}
  ]
}`

// TestScribeLocalGolden runs "mig scribe -t local" with each printer and
// with -onlytrue, and compares the output with golden files.
func TestScribeLocalGolden(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(scribeGoldenPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"line", nil},
		{"line-onlytrue", []string{"-onlytrue"}},
		{"human", []string{"-human"}},
		{"human-onlytrue", []string{"-human", "-onlytrue"}},
		{"json", []string{"-json"}},
		{"json-onlytrue", []string{"-json", "-onlytrue"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"scribe", "-t", "local", "-path", policy}, tt.args...)
			code, out, errOut := run(t, args...)
			if code != ExitOK {
				t.Fatalf("mig %q: exit %d\n%s", args, code, errOut)
			}
			golden(t, "scribe-local-"+tt.name+".golden", out)
		})
	}
}
