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
