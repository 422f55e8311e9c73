package pkgdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

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

// ReadRPMBerkeley reads the BerkeleyDB Packages file of RPM before 4.16
// (RHEL/CentOS 7 and 8, Amazon Linux 2, older Fedora and SUSE), in pure Go
// and read-only: a hash database (or a btree one) of either byte order,
// whose values are RPM headers, those larger than a page on overflow
// pages. A file that is not such a database, or that BerkeleyDB features
// RPM never used (encryption, page checksums, duplicates) would need,
// gives an error naming the file and what is wrong (wrapping ErrMalformed
// or ErrUnsupported). Entries that cannot be read (a broken overflow chain,
// a header that does not parse) are reported in the error and skipped; the
// others are returned.
func ReadRPMBerkeley(ctx context.Context, path string) ([]Package, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	defer f.Close()
	return readRPMBerkeley(ctx, path, f, size)
}

// ReadRPMNDB reads an RPM database in ndb format (Packages.db, SUSE's
// default since 2021), in pure Go and read-only: the slot table and the
// blobs it points to, each checked (magics, lengths, Adler-32 checksum)
// before its RPM header is parsed. A file that is not an ndb database gives
// an error naming the file and what is wrong (wrapping ErrMalformed);
// blobs that cannot be read are reported in the error and skipped, the
// others returned.
func ReadRPMNDB(ctx context.Context, path string) ([]Package, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", path, err)
	}
	defer f.Close()
	return readRPMNDB(ctx, path, f, size)
}

// errNotRegular says that a database path is not a regular file.
var errNotRegular = errors.New("not a regular file")

// openRegular opens path for reading without blocking, only if it is a
// regular file, and returns its size. Its errors do not name the path: the
// caller's do.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%w (%s)", errNotRegular, st.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}
