package pkgdb_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/migplatform/mig/internal/pkgdb"
)

const dpkgStatus = `Package: adduser
Status: install ok installed
Priority: important
Architecture: all
Version: 3.134
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands.
 .
 Version: 9.9 is not a field

Package: libnss3
Status: install ok installed
Architecture: amd64
Source: nss (2:3.87.1-1)
Version: 2:3.87.1-1+deb12u1

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: purged
Status: purge ok not-installed
Architecture: amd64

Package: unpacked
Status: install ok unpacked
Architecture: arm64
Source: unp
Version: 0.1-2
`

const apkInstalled = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
o:musl
L:

C:Q1def=
P:busybox
V:1.36.1-r5
A:x86_64
o:busybox
r:busybox-binsh
`

// rpmHeader encodes an RPM database header (no magic) with string tags and
// an optional epoch, with a region-like leading tag RPM also writes.
func rpmHeader(strs map[uint32]string, epoch int) []byte {
	var (
		index []byte
		data  []byte
	)
	entry := func(tag, typ, off, count uint32) {
		index = binary.BigEndian.AppendUint32(index, tag)
		index = binary.BigEndian.AppendUint32(index, typ)
		index = binary.BigEndian.AppendUint32(index, off)
		index = binary.BigEndian.AppendUint32(index, count)
	}
	// An immutable-region tag (63, BIN) as RPM writes first; readers skip it.
	entry(63, 7, 0, 16)
	data = append(data, make([]byte, 16)...)
	for _, tag := range []uint32{1000, 1001, 1002, 1022, 1044} {
		s, ok := strs[tag]
		if !ok {
			continue
		}
		entry(tag, 6, uint32(len(data)), 1)
		data = append(data, s...)
		data = append(data, 0)
	}
	if epoch >= 0 {
		for len(data)%4 != 0 {
			data = append(data, 0)
		}
		entry(1003, 4, uint32(len(data)), 1)
		data = binary.BigEndian.AppendUint32(data, uint32(epoch))
	}
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(index)/16))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, index...)
	return append(b, data...)
}

// writeRPMSQLite makes an rpmdb.sqlite with RPM's schema holding blobs.
func writeRPMSQLite(t *testing.T, path string, blobs ...[]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if _, err := db.Exec(`INSERT INTO Packages (blob) VALUES (?)`, b); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadDpkgStatus(t *testing.T) {
	got, err := pkgdb.ReadDpkgStatus(t.Context(), strings.NewReader(dpkgStatus))
	if err != nil {
		t.Fatal(err)
	}
	want := []pkgdb.Package{
		{Name: "adduser", Version: "3.134", Arch: "all", Type: "dpkg"},
		{Name: "libnss3", Version: "2:3.87.1-1+deb12u1", Arch: "amd64", Type: "dpkg", Source: "nss"},
		{Name: "unpacked", Version: "0.1-2", Arch: "arm64", Type: "dpkg", Source: "unp"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ReadDpkgStatus (-want +got):\n%s", d)
	}
}

func TestReadAPKInstalled(t *testing.T) {
	got, err := pkgdb.ReadAPKInstalled(t.Context(), strings.NewReader(apkInstalled))
	if err != nil {
		t.Fatal(err)
	}
	want := []pkgdb.Package{
		{Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", Type: "apk", Source: "musl"},
		{Name: "busybox", Version: "1.36.1-r5", Arch: "x86_64", Type: "apk", Source: "busybox"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ReadAPKInstalled (-want +got):\n%s", d)
	}
}

func TestReadMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"no colon", "Package: a\nthis line has none\n"},
		{"line too long", "Package: " + strings.Repeat("x", pkgdb.MaxLineSize+1) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pkgdb.ReadDpkgStatus(t.Context(), strings.NewReader(tc.in))
			if !errors.Is(err, pkgdb.ErrMalformed) {
				t.Errorf("ReadDpkgStatus error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseRPMHeader(t *testing.T) {
	full := rpmHeader(map[uint32]string{1000: "openssl-libs", 1001: "3.0.7", 1002: "27.el9", 1022: "x86_64", 1044: "openssl-3.0.7-27.el9.src.rpm"}, 1)
	noEpoch := rpmHeader(map[uint32]string{1000: "bash", 1001: "5.2.15", 1002: "1.fc38", 1022: "x86_64"}, -1)
	for _, tc := range []struct {
		name    string
		blob    []byte
		want    pkgdb.Package
		wantErr bool
	}{
		{"epoch", full, pkgdb.Package{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Arch: "x86_64", Type: "rpm", Source: "openssl-3.0.7-27.el9.src.rpm"}, false},
		{"no epoch", noEpoch, pkgdb.Package{Name: "bash", Version: "5.2.15-1.fc38", Arch: "x86_64", Type: "rpm"}, false},
		{"with magic", append([]byte{0x8e, 0xad, 0xe8, 1, 0, 0, 0, 0}, noEpoch...), pkgdb.Package{Name: "bash", Version: "5.2.15-1.fc38", Arch: "x86_64", Type: "rpm"}, false},
		{"truncated", full[:len(full)-3], pkgdb.Package{}, true},
		{"empty", nil, pkgdb.Package{}, true},
		{"no name", rpmHeader(map[uint32]string{1001: "1"}, -1), pkgdb.Package{}, true},
		{"huge index", []byte{0, 1, 0, 0, 0, 0, 0, 0}, pkgdb.Package{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pkgdb.ParseRPMHeader(tc.blob)
			if tc.wantErr {
				if !errors.Is(err, pkgdb.ErrMalformed) {
					t.Errorf("ParseRPMHeader error = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseRPMHeader = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestInstalledFixtureRoot(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusPath), dpkgStatus)
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusDir, "distroless"), "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n")
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusDir, "distroless.md5sums"), "not a stanza at all\n")
	writeFile(t, filepath.Join(root, pkgdb.APKInstalledPath), apkInstalled)
	writeRPMSQLite(t, filepath.Join(root, pkgdb.RPMSQLitePaths[0]),
		rpmHeader(map[uint32]string{1000: "zlib", 1001: "1.2.13", 1002: "3.fc38", 1022: "x86_64"}, -1),
		rpmHeader(map[uint32]string{1000: "gpg-pubkey", 1001: "eb10b464", 1002: "6202d9c6"}, -1),
		[]byte("garbage"),
	)
	got, err := pkgdb.Installed(t.Context(), root)
	if !errors.Is(err, pkgdb.ErrMalformed) {
		t.Errorf("Installed error = %v, want one wrapping ErrMalformed for the garbage header", err)
	}
	want := []pkgdb.Package{
		{Name: "busybox", Version: "1.36.1-r5", Arch: "x86_64", Type: "apk", Source: "busybox"},
		{Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", Type: "apk", Source: "musl"},
		{Name: "adduser", Version: "3.134", Arch: "all", Type: "dpkg"},
		{Name: "base-files", Version: "12.4", Arch: "amd64", Type: "dpkg"},
		{Name: "libnss3", Version: "2:3.87.1-1+deb12u1", Arch: "amd64", Type: "dpkg", Source: "nss"},
		{Name: "unpacked", Version: "0.1-2", Arch: "arm64", Type: "dpkg", Source: "unp"},
		{Name: "gpg-pubkey", Version: "eb10b464-6202d9c6", Type: "rpm"},
		{Name: "zlib", Version: "1.2.13-3.fc38", Arch: "x86_64", Type: "rpm"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Installed (-want +got):\n%s", d)
	}
}

func TestInstalledErrors(t *testing.T) {
	if _, err := pkgdb.Installed(t.Context(), t.TempDir()); !errors.Is(err, pkgdb.ErrNoDatabase) {
		t.Errorf("empty root: error = %v, want ErrNoDatabase", err)
	}
	// A BerkeleyDB file that is not one: an error naming the file and what
	// is wrong, never an empty package list.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, pkgdb.RPMBerkeleyPaths[0]), "\x00\x00\x00\x00")
	if _, err := pkgdb.Installed(t.Context(), root); !errors.Is(err, pkgdb.ErrMalformed) || !strings.Contains(err.Error(), pkgdb.RPMBerkeleyPaths[0]) || !strings.Contains(err.Error(), "file of 4 bytes is shorter than its 512-byte metadata page") {
		t.Errorf("BerkeleyDB root: error = %v, want ErrMalformed naming the file and its size", err)
	}
	// A broken ndb database next to a dpkg one: the dpkg packages are
	// returned and the ndb database is reported, never taken for an empty
	// one.
	root = t.TempDir()
	writeFile(t, filepath.Join(root, pkgdb.RPMNDBPaths[0]), "RpmP\x00\x00\x00\x00")
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusPath), dpkgStatus)
	pkgs, err := pkgdb.Installed(t.Context(), root)
	if !errors.Is(err, pkgdb.ErrMalformed) || !strings.Contains(err.Error(), pkgdb.RPMNDBPaths[0]) || !strings.Contains(err.Error(), "ndb file of 8 bytes") {
		t.Errorf("ndb root: error = %v, want ErrMalformed naming the file and its size", err)
	}
	if len(pkgs) == 0 {
		t.Errorf("ndb root: the dpkg packages were not returned")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	root = t.TempDir()
	writeFile(t, filepath.Join(root, pkgdb.DpkgStatusPath), strings.Repeat(dpkgStatus+"\n", 600))
	if _, err := pkgdb.Installed(ctx, root); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: error = %v, want context.Canceled", err)
	}
}

// TestInstalledThisMachine compares the reader with dpkg-query on this
// machine's real database.
func TestInstalledThisMachine(t *testing.T) {
	if _, err := os.Stat("/" + pkgdb.DpkgStatusPath); err != nil {
		t.Skip("no dpkg database on this machine")
	}
	q, err := exec.LookPath("dpkg-query")
	if err != nil {
		t.Skip("dpkg-query not installed")
	}
	out, err := exec.CommandContext(t.Context(), q, "-W", "-f", `${db:Status-Status} ${Package} ${Version} ${Architecture}\n`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []pkgdb.Package
	for line := range bytes.Lines(out) {
		f := strings.Fields(string(line))
		if len(f) != 4 || !pkgdb.DpkgInstalledStates[f[0]] {
			continue
		}
		want = append(want, pkgdb.Package{Name: f[1], Version: f[2], Arch: f[3], Type: "dpkg"})
	}
	pkgdb.Sort(want)
	all, err := pkgdb.Installed(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	var got []pkgdb.Package
	for _, p := range all {
		if p.Type == pkgdb.TypeDpkg {
			p.Source = ""
			got = append(got, p)
		}
	}
	if len(want) == 0 {
		t.Fatal("dpkg-query lists no installed package")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Installed against dpkg-query (-want +got):\n%s", d)
	}
}

func FuzzReadDpkgStatus(f *testing.F) {
	f.Add([]byte(dpkgStatus))
	f.Add([]byte(apkInstalled))
	f.Add([]byte("Package: a\nVersion: 1\n\n\n Status\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := pkgdb.ReadDpkgStatus(t.Context(), bytes.NewReader(data))
		if err != nil && !errors.Is(err, pkgdb.ErrMalformed) {
			t.Errorf("error %v does not wrap ErrMalformed", err)
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Type != pkgdb.TypeDpkg {
				t.Errorf("package %+v lacks a name, version or type", p)
			}
		}
		apks, err := pkgdb.ReadAPKInstalled(t.Context(), strings.NewReader(string(data)))
		if err != nil && !errors.Is(err, pkgdb.ErrMalformed) {
			t.Errorf("apk error %v does not wrap ErrMalformed", err)
		}
		for _, p := range apks {
			if p.Name == "" || p.Version == "" || p.Type != pkgdb.TypeAPK {
				t.Errorf("apk package %+v lacks a name, version or type", p)
			}
		}
	})
}

func FuzzParseRPMHeader(f *testing.F) {
	f.Add(rpmHeader(map[uint32]string{1000: "zlib", 1001: "1.2.13", 1002: "3", 1022: "x86_64", 1044: "z.src.rpm"}, 2))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 3, 232, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 'b', 'c', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pkgdb.ParseRPMHeader(data)
		if err != nil {
			if !errors.Is(err, pkgdb.ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if p.Name == "" || p.Version == "" || p.Type != pkgdb.TypeRPM {
			t.Errorf("package %+v lacks a name, version or type", p)
		}
	})
}

func FuzzReadAPKInstalled(f *testing.F) {
	f.Add([]byte(apkInstalled))
	f.Add([]byte("P:x\nV:1\n\n\nP:\nV:2\nA:x86_64\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := pkgdb.ReadAPKInstalled(t.Context(), strings.NewReader(string(data)))
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Type != pkgdb.TypeAPK {
				t.Errorf("package %+v accepted", p)
			}
		}
	})
}
