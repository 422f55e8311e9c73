package pkgdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	// The pure-Go SQLite driver reads rpmdb.sqlite, WAL included.
	_ "modernc.org/sqlite"
)

// ReadRPMSQLite reads an RPM database in SQLite format (rpmdb.sqlite, RPM
// 4.16 and later): the header blobs of its Packages table. The database is
// opened read-only. Headers that do not parse are reported in the error
// (wrapping ErrMalformed) and skipped; the others are returned.
func ReadRPMSQLite(ctx context.Context, path string) ([]Package, error) {
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: "mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `SELECT hnum, blob FROM Packages ORDER BY hnum`)
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	defer rows.Close()
	var (
		pkgs    []Package
		bad     int
		lastErr error
	)
	for rows.Next() {
		var (
			hnum int64
			blob []byte
		)
		if err := rows.Scan(&hnum, &blob); err != nil {
			return pkgs, fmt.Errorf("rpm database %s: %w", path, err)
		}
		p, err := ParseRPMHeader(blob)
		if err != nil {
			bad++
			lastErr = fmt.Errorf("header %d: %w", hnum, err)
			continue
		}
		pkgs = append(pkgs, p)
	}
	if err := rows.Err(); err != nil {
		return pkgs, fmt.Errorf("rpm database %s: %w", path, err)
	}
	if bad > 0 {
		return pkgs, fmt.Errorf("rpm database %s: %d headers skipped, last: %w", path, bad, lastErr)
	}
	return pkgs, nil
}

// ReadRPMBerkeley would read the BerkeleyDB Packages file of RPM before 4.16
// (RHEL/CentOS 7 and 8, older Fedora and SUSE). This package does not parse
// BerkeleyDB: it returns an error wrapping ErrUnsupported that names the
// file, so that the caller reports it instead of claiming nothing is
// installed. Convert such a database with `rpmdb --rebuilddb` on RPM 4.16+,
// or read it with the pkg module once support lands.
func ReadRPMBerkeley(ctx context.Context, path string) ([]Package, error) {
	return nil, fmt.Errorf("rpm database %s: BerkeleyDB: %w", path, ErrUnsupported)
}

// ReadRPMNDB would read an RPM database in ndb format (Packages.db, SUSE's
// default since 2021). This package does not parse ndb: it returns an error
// wrapping ErrUnsupported that names the file, so that the caller reports
// it instead of claiming nothing is installed. Convert such a database with
// `rpmdb --rebuilddb --define '_db_backend sqlite'`.
func ReadRPMNDB(ctx context.Context, path string) ([]Package, error) {
	return nil, fmt.Errorf("rpm database %s: ndb: %w", path, ErrUnsupported)
}
