// Package pkgdb reads the package databases of an endpoint: dpkg's status
// file (Debian, Ubuntu), the RPM database (Red Hat, Fedora, SUSE, Amazon
// Linux: SQLite, BerkeleyDB or ndb) and apk's installed file (Alpine). It answers "which packages are installed, in which
// version" without running any package manager, in pure Go, so that it works
// on a mounted image (a root other than "/") as well as on a live system.
//
// Installed reads every database found under a root; ReadDpkgStatus,
// ReadAPKInstalled, ReadRPMSQLite, ReadRPMBerkeley, ReadRPMNDB and
// ParseRPMHeader read one format each. Every database is untrusted input
// (anyone who can write a file on the endpoint can plant one): a file that
// is not what it should be gives an error naming it and the fault, never
// a panic, a hang or an allocation larger than the file.
//
// # Versions
//
// Version is what the package manager itself compares: dpkg's Version field
// as written ("[epoch:]upstream[-revision]"), apk's version, and for RPM
// "[epoch:]version-release" (the epoch only when the header has one), as
// `rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}'` prints it without "(none)".
package pkgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Package types.
const (
	TypeDpkg = "dpkg"
	TypeRPM  = "rpm"
	TypeAPK  = "apk"
)

// Package is one installed package.
type Package struct {
	// Name is the package's name, without architecture ("libnss3").
	Name string `json:"name"`
	// Version is the installed version (see the package documentation).
	Version string `json:"version"`
	// Arch is the package's architecture ("amd64", "x86_64", "all",
	// "noarch"); empty when the database does not record one.
	Arch string `json:"arch,omitempty"`
	// Type is TypeDpkg, TypeRPM or TypeAPK.
	Type string `json:"type"`
	// Source is the source package: dpkg's Source name (without its
	// version), RPM's source RPM file name, apk's origin. Empty when the
	// database does not say.
	Source string `json:"source,omitempty"`
}

// Sentinel errors.
var (
	// ErrNoDatabase is returned by Installed when no package database
	// exists under the root.
	ErrNoDatabase = errors.New("no package database found")
	// ErrMalformed is wrapped by every error about a database whose content
	// cannot be parsed.
	ErrMalformed = errors.New("malformed package database")
)

// Database locations relative to a root.
var (
	// DpkgStatusPath is dpkg's status file.
	DpkgStatusPath = "var/lib/dpkg/status"
	// DpkgStatusDir holds one status file per package on distroless images.
	DpkgStatusDir = "var/lib/dpkg/status.d"
	// APKInstalledPath is apk's installed database.
	APKInstalledPath = "lib/apk/db/installed"
	// RPMSQLitePaths are where RPM keeps rpmdb.sqlite, newest layout first.
	RPMSQLitePaths = []string{"usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite"}
	// RPMNDBPaths are where RPM keeps an ndb database (Packages.db, the
	// default of SUSE since 2021).
	RPMNDBPaths = []string{"usr/lib/sysimage/rpm/Packages.db", "var/lib/rpm/Packages.db"}
	// RPMBerkeleyPaths are where RPM before 4.16 keeps its BerkeleyDB
	// Packages file (RHEL/CentOS 7 and 8, Amazon Linux 2).
	RPMBerkeleyPaths = []string{"var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages"}
)

// ErrUnsupported is wrapped by errors about a database in a format, or
// with a feature, this package cannot read (an encrypted BerkeleyDB, an
// unknown format version).
var ErrUnsupported = errors.New("unsupported package database format")

// Installed returns the packages installed under root ("/" for the running
// system), from every database it finds there, sorted by type, name,
// architecture and version. A database that exists but cannot be read is
// reported in the returned error (joined with the others) while the packages
// of the other databases are still returned. It returns ErrNoDatabase when
// there is no database at all. Of RPM's databases it reads one, the first
// found of rpmdb.sqlite (RPM 4.16+), Packages.db (ndb) and Packages
// (BerkeleyDB), so that a file left behind by a conversion is not counted
// twice.
func Installed(ctx context.Context, root string) ([]Package, error) {
	var (
		all   []Package
		errs  []error
		found bool
	)
	add := func(pkgs []Package, err error) {
		found = true
		all = append(all, pkgs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if p := filepath.Join(root, DpkgStatusPath); exists(p) {
		add(readFile(ctx, p, ReadDpkgStatus))
	}
	if d := filepath.Join(root, DpkgStatusDir); exists(d) {
		add(readDpkgStatusDir(ctx, d))
	}
	if p := filepath.Join(root, APKInstalledPath); exists(p) {
		add(readFile(ctx, p, ReadAPKInstalled))
	}
	rpmFound := false
	for _, rel := range RPMSQLitePaths {
		if p := filepath.Join(root, rel); exists(p) {
			rpmFound = true
			add(ReadRPMSQLite(ctx, p))
			break
		}
	}
	if !rpmFound {
		for _, rel := range RPMNDBPaths {
			if p := filepath.Join(root, rel); exists(p) {
				rpmFound = true
				add(ReadRPMNDB(ctx, p))
				break
			}
		}
	}
	if !rpmFound {
		for _, rel := range RPMBerkeleyPaths {
			if p := filepath.Join(root, rel); exists(p) {
				add(ReadRPMBerkeley(ctx, p))
				break
			}
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if !found {
		return nil, fmt.Errorf("%w under %q", ErrNoDatabase, root)
	}
	Sort(all)
	return all, errors.Join(errs...)
}

// Sort sorts packages by type, name, architecture and version.
func Sort(pkgs []Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return a.Version < b.Version
	})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readFile(ctx context.Context, path string, read func(context.Context, io.Reader) ([]Package, error)) ([]Package, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	pkgs, err := read(ctx, f)
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", path, err)
	}
	return pkgs, nil
}
