package pkgdb

import (
	"context"
	"io"
)

var apkFields = map[string]bool{"P": true, "V": true, "A": true, "o": true}

// ReadAPKInstalled reads apk's installed database (/lib/apk/db/installed):
// stanzas of one-letter fields, P the name, V the version, A the
// architecture and o the origin (source). Stanzas without a name or version
// are skipped.
func ReadAPKInstalled(ctx context.Context, r io.Reader) ([]Package, error) {
	var pkgs []Package
	err := readStanzas(ctx, r, apkFields, func(f map[string]string) {
		if f["P"] == "" || f["V"] == "" {
			return
		}
		pkgs = append(pkgs, Package{Name: f["P"], Version: f["V"], Arch: f["A"], Type: TypeAPK, Source: f["o"]})
	})
	return pkgs, err
}
