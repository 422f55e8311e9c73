package pkgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

var dpkgFields = map[string]bool{"Package": true, "Status": true, "Version": true, "Architecture": true, "Source": true}

// DpkgInstalledStates are the dpkg package states (the third word of the
// Status field) whose files are on disk, which this package counts as
// installed; "not-installed" and "config-files" are not.
var DpkgInstalledStates = map[string]bool{
	"installed":        true,
	"half-installed":   true,
	"unpacked":         true,
	"half-configured":  true,
	"triggers-awaited": true,
	"triggers-pending": true,
}

// ReadDpkgStatus reads a dpkg status file (/var/lib/dpkg/status) and returns
// its installed packages (see DpkgInstalledStates), in file order. A stanza
// without a Status field (as in the files of /var/lib/dpkg/status.d) counts
// as installed. Stanzas without a Package or Version are skipped.
func ReadDpkgStatus(ctx context.Context, r io.Reader) ([]Package, error) {
	var pkgs []Package
	err := readStanzas(ctx, r, dpkgFields, func(f map[string]string) {
		if f["Package"] == "" || f["Version"] == "" {
			return
		}
		if st, ok := f["Status"]; ok {
			words := strings.Fields(st)
			if len(words) != 3 || !DpkgInstalledStates[words[2]] {
				return
			}
		}
		src, _, _ := strings.Cut(f["Source"], " ")
		pkgs = append(pkgs, Package{
			Name:    f["Package"],
			Version: f["Version"],
			Arch:    f["Architecture"],
			Type:    TypeDpkg,
			Source:  src,
		})
	})
	return pkgs, err
}

// readDpkgStatusDir reads every regular file of a status.d directory,
// skipping dpkg's checksum files (*.md5sums).
func readDpkgStatusDir(ctx context.Context, dir string) ([]Package, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var (
		pkgs []Package
		errs []error
	)
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".md5sums") {
			continue
		}
		p, err := readFile(ctx, filepath.Join(dir, e.Name()), ReadDpkgStatus)
		pkgs = append(pkgs, p...)
		if err != nil {
			errs = append(errs, err)
		}
		if err := ctx.Err(); err != nil {
			return pkgs, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return pkgs, errors.Join(errs...)
}
