package pkgdb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds the files matching pattern under testdata/rpm as seeds.
func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rpm", pattern))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed matches %s: %v", pattern, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkFuzzed checks what a reader made of fuzzed input: errors say the
// file is malformed or unsupported and name it, packages are complete.
func checkFuzzed(t *testing.T, name string, pkgs []Package, err error) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("error %v wraps neither ErrMalformed nor ErrUnsupported", err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	for _, p := range pkgs {
		if p.Name == "" || p.Version == "" || p.Type != TypeRPM {
			t.Errorf("package %+v accepted", p)
		}
	}
}

func FuzzReadRPMBerkeley(f *testing.F) {
	addSeeds(f, "fuzz/bdb-*/Packages")
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz/Packages"
		pkgs, err := readRPMBerkeley(t.Context(), name, bytes.NewReader(data), int64(len(data)))
		checkFuzzed(t, name, pkgs, err)
	})
}

func FuzzReadRPMNDB(f *testing.F) {
	addSeeds(f, "fuzz/ndb/Packages.db")
	f.Add([]byte("RpmP\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz/Packages.db"
		pkgs, err := readRPMNDB(t.Context(), name, bytes.NewReader(data), int64(len(data)))
		checkFuzzed(t, name, pkgs, err)
	})
}
