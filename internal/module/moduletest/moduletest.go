// Package moduletest holds what the module test packages share: golden
// files of printed results, building parameters from flags, and checking
// that an error names what it must.
package moduletest

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/module"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Golden compares got with testdata/name, which "go test -update" rewrites
// with got.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("printed\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

// Build parses args with m's flags ("mig <module> args") and returns the
// parameters they build. With wantErr, building must fail with an error
// naming every string of wantErr, and Build returns nil; without, an error
// fails the test, and so does a build that returns no Runner or one other
// than what m.ParseParameters makes of the parameters.
func Build(t testing.TB, m module.Module, args []string, wantErr []string) json.RawMessage {
	t.Helper()
	fs := flag.NewFlagSet(m.Name(), flag.ContinueOnError)
	build := module.SetFlags(m, fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	raw, r, err := build()
	if wantErr != nil {
		if err == nil {
			t.Fatalf("build() = %s, want an error", raw)
		}
		if raw != nil || r != nil {
			t.Errorf("build() = %s, %v with error %v, want neither parameters nor a runner", raw, r, err)
		}
		for _, w := range wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("build() error = %q, want it to contain %q", err, w)
			}
		}
		return nil
	}
	if err != nil {
		t.Fatalf("build() error = %v", err)
	}
	want, err := m.ParseParameters(raw)
	if err != nil {
		t.Fatalf("ParseParameters(build() = %s) error = %v", raw, err)
	}
	if r == nil || reflect.TypeOf(r) != reflect.TypeOf(want) {
		t.Errorf("build() runner = %T, want the %T that ParseParameters returns", r, want)
	}
	return raw
}

// Refused checks an error of a module's ParseParameters for params: it
// must wrap invalid (the module's ErrInvalidParameters) and name every
// string of want.
func Refused(t testing.TB, params string, err, invalid error, want []string) {
	t.Helper()
	if !errors.Is(err, invalid) {
		t.Fatalf("ParseParameters(%s) error = %v, want an error wrapping %v", params, err, invalid)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error = %q, want it to contain %q", err, w)
		}
	}
}
