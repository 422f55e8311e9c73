package pkgdb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/migplatform/mig/internal/pkgdb"
)

// The RPM fixtures under testdata/rpm are real databases holding the
// headers of rpmFixture:
//
//   - bdb-hash-le/Packages, bdb-hash-be/Packages, bdb-btree-be/Packages:
//     BerkeleyDB 5.3 files made by db_load (Debian's db-util) from the
//     db_dump text writeBerkeley builds, with 512- and 1024-byte pages so
//     that the larger headers span several overflow pages;
//   - ndb/Packages.db: made by RPM's own ndb code (lib/backend/ndb/rpmpkg.c
//     of rpm 4.18, built by hand with a ten-line driver that calls
//     rpmpkgPut for each header file and rpmpkgDel for the packages
//     rpmFixtureDeleted lists), so it holds free slots and zeroed blobs.
//
// `go test -run TestRPMFixturesUpdate -update-rpm-fixtures` remakes the
// BerkeleyDB ones (and the ndb ones when MIG_NDBPUT names that driver).
// Debian's rpm is built without ndb, so the driver is built by hand from
// rpm's source (`apt-get source rpm`, with a deb-src line) and this main.c,
// with system.h and rpm/rpmlog.h stubs mapping xmalloc, xcalloc, xrealloc,
// xstrdup to libc, _(s) to s and rpmlog to fprintf(stderr):
//
//	// ndbput DB ARG...: "+FILE" stores the header in FILE as the next
//	// package, "-N" deletes package N.
//	int main(int argc, char **argv) {
//		static unsigned char buf[64 << 20];
//		rpmpkgdb db;
//		unsigned int next = 1;
//		if (argc < 2 || rpmpkgOpen(&db, argv[1], O_RDWR | O_CREAT, 0644)) return 1;
//		rpmpkgSetFsync(db, 0);
//		for (int i = 2; i < argc; i++) {
//			if (argv[i][0] == '-') { if (rpmpkgDel(db, atoi(argv[i] + 1))) return 1; continue; }
//			FILE *f = fopen(argv[i] + 1, "rb");
//			if (!f) return 1;
//			size_t n = fread(buf, 1, sizeof(buf), f);
//			fclose(f);
//			if (rpmpkgPut(db, next++, buf, n)) return 1;
//		}
//		rpmpkgClose(db);
//		return 0;
//	}
//
//	gcc -Iinc -Irpm-4.18.0/lib/backend/ndb -o ndbput main.c rpm-4.18.0/lib/backend/ndb/rpmpkg.c
var updateRPMFixtures = flag.Bool("update-rpm-fixtures", false, "remake testdata/rpm with db_load (and $MIG_NDBPUT)")

// rpmPkg is one package of a test RPM database.
type rpmPkg struct {
	name    string
	epoch   int
	version string
	release string
	arch    string
	source  string
	pad     int
}

func (p rpmPkg) header() []byte {
	return rpmDBHeader(p.name, p.epoch, p.version, p.release, p.arch, p.source, p.pad)
}

func (p rpmPkg) want() pkgdb.Package {
	v := p.version + "-" + p.release
	if p.epoch >= 0 {
		v = fmt.Sprint(p.epoch) + ":" + v
	}
	return pkgdb.Package{Name: p.name, Version: v, Arch: p.arch, Type: pkgdb.TypeRPM, Source: p.source}
}

// rpmPackages makes n packages: a few like those of a RHEL 7 host, some of
// them larger than a page, then generated ones.
func rpmPackages(n int) []rpmPkg {
	pkgs := []rpmPkg{
		{"zlib", -1, "1.2.7", "21.el7_9", "x86_64", "zlib-1.2.7-21.el7_9.src.rpm", 0},
		{"openssl-libs", 1, "1.0.2k", "26.el7_9", "x86_64", "openssl-1.0.2k-26.el7_9.src.rpm", 1500},
		{"bash", -1, "4.2.46", "35.el7_9", "x86_64", "bash-4.2.46-35.el7_9.src.rpm", 0},
		{"gpg-pubkey", -1, "f4a80eb5", "53a7ff4b", "", "", 0},
		{"kernel", 0, "3.10.0", "1160.119.1.el7", "x86_64", "kernel-3.10.0-1160.119.1.el7.src.rpm", 9000},
		{"tzdata", -1, "2024a", "1.el7", "noarch", "tzdata-2024a-1.el7.src.rpm", 0},
	}
	arches := []string{"x86_64", "noarch", "aarch64", "i686"}
	for i := len(pkgs); i < n; i++ {
		p := rpmPkg{
			name:    fmt.Sprintf("pkg%04d", i),
			epoch:   i%4 - 1,
			version: fmt.Sprintf("%d.%d", i%7, i),
			release: fmt.Sprintf("%d.el8", i%5),
			arch:    arches[i%len(arches)],
			source:  fmt.Sprintf("pkg%04d-%d.%d-%d.el8.src.rpm", i, i%7, i, i%5),
		}
		if i%40 == 0 {
			p.pad = 700 * (i % 9)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs[:n]
}

// rpmFixture is the content of the fixtures in testdata/rpm;
// rpmFixtureDeleted are the package numbers (1-based) the ndb fixture had
// and deleted.
var (
	rpmFixture        = rpmPackages(300)
	rpmFixtureDeleted = []int{3, 150, 301}
)

func wantPackages(pkgs []rpmPkg, deleted ...int) []pkgdb.Package {
	var want []pkgdb.Package
	for i, p := range pkgs {
		if contains(deleted, i+1) {
			continue
		}
		want = append(want, p.want())
	}
	pkgdb.Sort(want)
	return want
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// rpmDBHeader encodes an RPM header as RPM stores it in its database and
// as RPM itself verifies it: every entry inside one immutable region (tag
// 63, whose trailer closes the data), entries sorted by tag, data laid out
// in entry order. pad adds a URL of that many bytes, to make headers
// larger than a database page.
func rpmDBHeader(name string, epoch int, version, release, arch, source string, pad int) []byte {
	type entry struct {
		tag, typ uint32
		data     []byte
	}
	str := func(tag uint32, s string) entry { return entry{tag, 6, append([]byte(s), 0)} }
	var es []entry
	es = append(es, str(1000, name), str(1001, version), str(1002, release))
	if epoch >= 0 {
		es = append(es, entry{1003, 4, binary.BigEndian.AppendUint32(nil, uint32(epoch))})
	}
	if pad > 0 {
		es = append(es, str(1020, "https://example.org/"+strings.Repeat("p", pad)))
	}
	if arch != "" {
		es = append(es, str(1022, arch))
	}
	if source != "" {
		es = append(es, str(1044, source))
	}
	il := uint32(len(es) + 1)
	var index, data []byte
	add := func(tag, typ, off, count uint32) {
		index = binary.BigEndian.AppendUint32(index, tag)
		index = binary.BigEndian.AppendUint32(index, typ)
		index = binary.BigEndian.AppendUint32(index, off)
		index = binary.BigEndian.AppendUint32(index, count)
	}
	for _, e := range es {
		if e.typ == 4 {
			for len(data)%4 != 0 {
				data = append(data, 0)
			}
		}
		add(e.tag, e.typ, uint32(len(data)), 1)
		data = append(data, e.data...)
	}
	// The region's trailer: tag 63, BIN, minus the region's index size, 16.
	trailer := uint32(len(data))
	data = binary.BigEndian.AppendUint32(data, 63)
	data = binary.BigEndian.AppendUint32(data, 7)
	data = binary.BigEndian.AppendUint32(data, uint32(-int32(il*16)))
	data = binary.BigEndian.AppendUint32(data, 16)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, il)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = binary.BigEndian.AppendUint32(b, 63)
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint32(b, trailer)
	b = binary.BigEndian.AppendUint32(b, 16)
	b = append(b, index...)
	return append(b, data...)
}

// berkeleyLayout is how writeBerkeley makes a database.
type berkeleyLayout struct {
	typ       string // "hash" or "btree"
	pageSize  int
	bigEndian bool
}

func (l berkeleyLayout) String() string {
	order := "le"
	if l.bigEndian {
		order = "be"
	}
	return fmt.Sprintf("%s-%s-%d", l.typ, order, l.pageSize)
}

// writeBerkeley makes dir/Packages with db_load: record 0 holds the next
// package number, record i the header of pkgs[i-1], keys in the file's
// byte order as RPM wrote them. It skips the test when db_load is missing.
func writeBerkeley(t testing.TB, dir string, l berkeleyLayout, pkgs []rpmPkg) string {
	t.Helper()
	load := lookTool(t, "db_load", "db5.3_load")
	order := binary.AppendByteOrder(binary.LittleEndian)
	lorder := "1234"
	if l.bigEndian {
		order, lorder = binary.BigEndian, "4321"
	}
	var in strings.Builder
	fmt.Fprintf(&in, "VERSION=3\nformat=bytevalue\ntype=%s\ndb_pagesize=%d\nHEADER=END\n", l.typ, l.pageSize)
	rec := func(key uint32, value []byte) {
		fmt.Fprintf(&in, " %s\n %s\n", hex.EncodeToString(order.AppendUint32(nil, key)), hex.EncodeToString(value))
	}
	rec(0, order.AppendUint32(nil, uint32(len(pkgs)+1)))
	for i, p := range pkgs {
		rec(uint32(i+1), p.header())
	}
	in.WriteString("DATA=END\n")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "Packages")
	os.Remove(path)
	cmd := exec.Command(load, "-c", "db_lorder="+lorder, path)
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", load, err, out)
	}
	return path
}

// lookTool returns the first of names found in PATH, or skips the test.
func lookTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (apt-get install db-util rpm)", strings.Join(names, " or "))
	return ""
}

// rpmQueryAll lists the packages of the database in dir as rpm itself
// reads it with backend, in pkgdb's form. It skips the test when rpm is
// missing or cannot read that backend.
func rpmQueryAll(t testing.TB, dir, backend string) []pkgdb.Package {
	t.Helper()
	rpm := lookTool(t, "rpm")
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rpm, "--dbpath", dir, "--define", "_db_backend "+backend, "-qa",
		"--qf", `%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v\n%s", err, stderr.Bytes())
	}
	if strings.Contains(stderr.String(), "invalid %_db_backend") || strings.Contains(stderr.String(), "using dummy database") {
		t.Skipf("rpm cannot read the %s backend: %s", backend, stderr.Bytes())
	}
	var got []pkgdb.Package
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 6 {
			t.Fatalf("rpm -qa printed %q", line)
		}
		none := func(s string) string {
			if s == "(none)" {
				return ""
			}
			return s
		}
		v := f[2] + "-" + f[3]
		if e := none(f[1]); e != "" {
			v = e + ":" + v
		}
		got = append(got, pkgdb.Package{Name: f[0], Version: v, Arch: none(f[4]), Type: pkgdb.TypeRPM, Source: none(f[5])})
	}
	if len(got) == 0 {
		t.Fatalf("rpm -qa listed nothing; stderr:\n%s", stderr.Bytes())
	}
	pkgdb.Sort(got)
	return got
}

// fixtureLayouts are the BerkeleyDB fixtures in testdata/rpm.
var fixtureLayouts = []berkeleyLayout{
	{"hash", 512, false},
	{"hash", 1024, true},
	{"btree", 512, true},
}

func fixtureDir(l berkeleyLayout) string {
	return filepath.Join("testdata", "rpm", "bdb-"+l.String())
}

var ndbFixture = filepath.Join("testdata", "rpm", "ndb", "Packages.db")

// TestRPMFixturesUpdate remakes testdata/rpm when asked to.
func TestRPMFixturesUpdate(t *testing.T) {
	if !*updateRPMFixtures {
		t.Skip("run with -update-rpm-fixtures to remake testdata/rpm")
	}
	for _, l := range fixtureLayouts {
		writeBerkeley(t, fixtureDir(l), l, rpmFixture)
	}
	for _, l := range fuzzLayouts {
		writeBerkeley(t, filepath.Join(fuzzSeedDir, "bdb-"+l.String()), l, rpmPackages(4))
	}
	put := os.Getenv("MIG_NDBPUT")
	if put == "" {
		t.Log("MIG_NDBPUT not set: the ndb fixtures are kept")
		return
	}
	writeNDB(t, put, ndbFixture, append(rpmFixture, rpmPkg{"removed", -1, "1", "1", "noarch", "", 0}), rpmFixtureDeleted)
	writeNDB(t, put, filepath.Join(fuzzSeedDir, "ndb", "Packages.db"), rpmPackages(5), []int{3})
}

// Small databases for the fuzz targets' seeds.
var (
	fuzzSeedDir = filepath.Join("testdata", "rpm", "fuzz")
	fuzzLayouts = []berkeleyLayout{{"hash", 512, false}, {"hash", 512, true}, {"btree", 512, false}}
)

// writeNDB makes path with RPM's ndb code (the driver put), storing pkgs
// as packages 1 to n, then deleting those numbered in deleted.
func writeNDB(t testing.TB, put, path string, pkgs []rpmPkg, deleted []int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{path}
	os.Remove(path)
	for i, p := range pkgs {
		f := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(f, p.header(), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "+"+f)
	}
	for _, d := range deleted {
		args = append(args, fmt.Sprintf("-%d", d))
	}
	if out, err := exec.Command(put, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", put, err, out)
	}
}

// TestReadRPMFixtures reads the committed databases, BerkeleyDB of both
// byte orders, hash and btree, and ndb, and checks them against what they
// hold and, where rpm can read the backend, against rpm -qa.
func TestReadRPMFixtures(t *testing.T) {
	want := wantPackages(rpmFixture)
	for _, l := range fixtureLayouts {
		t.Run("bdb-"+l.String(), func(t *testing.T) {
			path := filepath.Join(fixtureDir(l), "Packages")
			got, err := pkgdb.ReadRPMBerkeley(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			pkgdb.Sort(got)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("ReadRPMBerkeley(%s) (-want +got):\n%s", path, d)
			}
		})
	}
	t.Run("ndb", func(t *testing.T) {
		got, err := pkgdb.ReadRPMNDB(t.Context(), ndbFixture)
		if err != nil {
			t.Fatal(err)
		}
		pkgdb.Sort(got)
		if d := cmp.Diff(wantPackages(rpmFixture, rpmFixtureDeleted...), got); d != "" {
			t.Errorf("ReadRPMNDB(%s) (-want +got):\n%s", ndbFixture, d)
		}
	})
}

// TestReadRPMBerkeleyAgainstRPM makes BerkeleyDB databases with db_load in
// every layout RPM used (hash and btree, both byte orders, small and large
// pages), reads them, and compares with what rpm's own bdb_ro backend
// lists from the same file.
func TestReadRPMBerkeleyAgainstRPM(t *testing.T) {
	pkgs := rpmPackages(600)
	want := wantPackages(pkgs)
	for _, l := range []berkeleyLayout{
		{"hash", 4096, false},
		{"hash", 4096, true},
		{"hash", 512, true},
		{"hash", 65536, false},
		{"btree", 4096, false},
		{"btree", 1024, true},
	} {
		t.Run(l.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := writeBerkeley(t, dir, l, pkgs)
			got, err := pkgdb.ReadRPMBerkeley(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			pkgdb.Sort(got)
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("ReadRPMBerkeley (-want +got):\n%s", d)
			}
			if d := cmp.Diff(rpmQueryAll(t, dir, "bdb_ro"), got); d != "" {
				t.Errorf("ReadRPMBerkeley against rpm -qa (-rpm +ours):\n%s", d)
			}
		})
	}
}

// TestReadRPMFixturesAgainstRPM lists the committed BerkeleyDB fixtures
// with rpm's bdb_ro backend too, and the ndb one with rpm's ndb backend
// where rpm has it (Debian's does not).
func TestReadRPMFixturesAgainstRPM(t *testing.T) {
	for _, l := range fixtureLayouts {
		t.Run("bdb-"+l.String(), func(t *testing.T) {
			if d := cmp.Diff(wantPackages(rpmFixture), rpmQueryAll(t, fixtureDir(l), "bdb_ro")); d != "" {
				t.Errorf("rpm -qa on the fixture (-want +rpm):\n%s", d)
			}
		})
	}
	t.Run("ndb", func(t *testing.T) {
		dir := t.TempDir()
		b, err := os.ReadFile(ndbFixture)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Packages.db"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(wantPackages(rpmFixture, rpmFixtureDeleted...), rpmQueryAll(t, dir, "ndb")); d != "" {
			t.Errorf("rpm -qa on the fixture (-want +rpm):\n%s", d)
		}
	})
}

// TestInstalledRPMFormats reads roots whose only package database is a
// BerkeleyDB or an ndb one, where the pkg and scribe modules look.
func TestInstalledRPMFormats(t *testing.T) {
	for _, tc := range []struct {
		rel, fixture string
		want         []pkgdb.Package
	}{
		{pkgdb.RPMBerkeleyPaths[0], filepath.Join(fixtureDir(fixtureLayouts[0]), "Packages"), wantPackages(rpmFixture)},
		{pkgdb.RPMBerkeleyPaths[1], filepath.Join(fixtureDir(fixtureLayouts[2]), "Packages"), wantPackages(rpmFixture)},
		{pkgdb.RPMNDBPaths[0], ndbFixture, wantPackages(rpmFixture, rpmFixtureDeleted...)},
		{pkgdb.RPMNDBPaths[1], ndbFixture, wantPackages(rpmFixture, rpmFixtureDeleted...)},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			root := t.TempDir()
			b, err := os.ReadFile(tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(root, tc.rel), string(b))
			got, err := pkgdb.Installed(t.Context(), root)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Installed (-want +got):\n%s", d)
			}
		})
	}
}

// corrupt is one damage done to a copy of a fixture.
type corrupt struct {
	name string
	// damage changes the file's bytes (and may return a shorter slice).
	damage func(t *testing.T, b []byte) []byte
	// sentinel is what the error wraps; text what it says.
	sentinel error
	text     string
	// minPkgs is how many packages must still be read.
	minPkgs int
}

// bdbPages returns the numbers of the pages of type typ in a BerkeleyDB
// file of pages of size ps in byte order bo.
func bdbPages(b []byte, ps int, typ byte) []int {
	var pages []int
	for p := 1; (p+1)*ps <= len(b); p++ {
		if b[p*ps+25] == typ {
			pages = append(pages, p)
		}
	}
	return pages
}

// chainedPage returns the first page of type typ that has a next page.
func chainedPage(t *testing.T, b []byte, ps int, typ byte, bo binary.ByteOrder) int {
	t.Helper()
	for _, p := range bdbPages(b, ps, typ) {
		if bo.Uint32(b[p*ps+16:]) != 0 {
			return p
		}
	}
	t.Fatalf("no page of type %d with a next page", typ)
	return 0
}

// firstOffPageItem returns the byte offset of the first off-page item of a
// hash page of the file.
func firstOffPageItem(t *testing.T, b []byte, ps int, bo binary.ByteOrder) int {
	t.Helper()
	for _, p := range bdbPages(b, ps, 13) {
		page := b[p*ps : (p+1)*ps]
		n := int(bo.Uint16(page[20:]))
		for i := 1; i < n; i += 2 {
			off := int(bo.Uint16(page[26+2*i:]))
			if page[off] == 3 {
				return p*ps + off
			}
		}
	}
	t.Fatal("no off-page item in the fixture")
	return 0
}

func TestReadRPMBerkeleyCorrupt(t *testing.T) {
	const ps = 512 // the hash-le fixture's page size
	le := binary.LittleEndian
	all := len(rpmFixture)
	for _, tc := range []corrupt{
		{"empty", func(t *testing.T, b []byte) []byte { return nil }, pkgdb.ErrMalformed, "file of 0 bytes is shorter than its 512-byte metadata page", 0},
		{"not a database", func(t *testing.T, b []byte) []byte { return bytes.Repeat([]byte("rpm!"), 300) }, pkgdb.ErrMalformed, "magic 0x216d7072 is neither a BerkeleyDB hash nor a btree database", 0},
		{"truncated", func(t *testing.T, b []byte) []byte { return b[:len(b)-ps] }, pkgdb.ErrMalformed, "truncated: last page", 0},
		{"page size", func(t *testing.T, b []byte) []byte { le.PutUint32(b[20:], 1000); return b }, pkgdb.ErrMalformed, "page size 1000 is not a power of two", 0},
		{"huge last page", func(t *testing.T, b []byte) []byte { le.PutUint32(b[32:], 0xffffffff); return b }, pkgdb.ErrMalformed, "truncated: last page 4294967295", 0},
		{"encrypted", func(t *testing.T, b []byte) []byte { b[24] = 1; return b }, pkgdb.ErrUnsupported, "encrypted BerkeleyDB", 0},
		{"version", func(t *testing.T, b []byte) []byte { le.PutUint32(b[16:], 7); return b }, pkgdb.ErrUnsupported, "BerkeleyDB format version 7", 0},
		{"huge max bucket", func(t *testing.T, b []byte) []byte { le.PutUint32(b[72:], 0xfffffff0); return b }, pkgdb.ErrMalformed, "hash with 4294967281 buckets in a file of", 0},
		{"spare past the file", func(t *testing.T, b []byte) []byte { le.PutUint32(b[96+4*1:], 0x7fffffff); return b }, pkgdb.ErrMalformed, "bucket 1: malformed package database: page 2147483648 is outside the file's pages", 1},
		{"overflow loop", func(t *testing.T, b []byte) []byte {
			ov := chainedPage(t, b, ps, 7, le)
			le.PutUint32(b[ov*ps+16:], uint32(ov))
			return b
		}, pkgdb.ErrMalformed, "is reached twice (a loop in a page chain)", all - 1},
		{"overflow chain cut", func(t *testing.T, b []byte) []byte {
			le.PutUint32(b[chainedPage(t, b, ps, 7, le)*ps+16:], 0)
			return b
		}, pkgdb.ErrMalformed, "ends after", all - 1},
		{"overflow page length", func(t *testing.T, b []byte) []byte {
			ov := bdbPages(b, ps, 7)
			le.PutUint16(b[ov[0]*ps+22:], ps)
			return b
		}, pkgdb.ErrMalformed, "holds 512 bytes (page of 512", all - 1},
		{"overflow to a hash page", func(t *testing.T, b []byte) []byte {
			off := firstOffPageItem(t, b, ps, le)
			le.PutUint32(b[off+4:], 1)
			return b
		}, pkgdb.ErrMalformed, "page 1 is reached twice", 0},
		{"huge off-page length", func(t *testing.T, b []byte) []byte {
			off := firstOffPageItem(t, b, ps, le)
			le.PutUint32(b[off+8:], 0xffffffff)
			return b
		}, pkgdb.ErrMalformed, "overflow item of 4294967295 bytes", all - 1},
		{"bucket loop", func(t *testing.T, b []byte) []byte {
			h := bdbPages(b, ps, 13)
			le.PutUint32(b[h[0]*ps+16:], uint32(h[0]))
			return b
		}, pkgdb.ErrMalformed, "is reached twice (a loop in a page chain)", 1},
		{"item count", func(t *testing.T, b []byte) []byte {
			h := bdbPages(b, ps, 13)
			le.PutUint16(b[h[0]*ps+20:], 0xffff)
			return b
		}, pkgdb.ErrMalformed, "claims 65535 items, more than fit in 512 bytes", 1},
		{"item offset", func(t *testing.T, b []byte) []byte {
			h := bdbPages(b, ps, 13)
			le.PutUint16(b[h[0]*ps+26:], 3)
			return b
		}, pkgdb.ErrMalformed, "item 0 at offset 3 is outside the page's item area", 1},
		{"page number", func(t *testing.T, b []byte) []byte {
			h := bdbPages(b, ps, 13)
			le.PutUint32(b[h[0]*ps+8:], 77777)
			return b
		}, pkgdb.ErrMalformed, "says it is page 77777", 1},
		{"bad header", func(t *testing.T, b []byte) []byte {
			off := firstOffPageItem(t, b, ps, le)
			first := le.Uint32(b[off+4:])
			le.PutUint32(b[int(first)*ps+26:], 0xffffffff) // the header's index count
			return b
		}, pkgdb.ErrMalformed, "1 entries skipped, last: header ", all - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readDamaged(t, tc, filepath.Join(fixtureDir(fixtureLayouts[0]), "Packages"), "Packages", pkgdb.ReadRPMBerkeley)
		})
	}
}

// readDamaged copies the database src to a file named base, damaged as tc
// says, reads it back with read and checks the error and what was read.
func readDamaged(t *testing.T, tc corrupt, src, base string, read func(context.Context, string) ([]pkgdb.Package, error)) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), base)
	if err := os.WriteFile(path, tc.damage(t, b), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := read(t.Context(), path)
	checkCorrupt(t, tc, path, pkgs, err)
}

func checkCorrupt(t *testing.T, tc corrupt, path string, pkgs []pkgdb.Package, err error) {
	t.Helper()
	if !errors.Is(err, tc.sentinel) {
		t.Fatalf("error = %v, want one wrapping %v", err, tc.sentinel)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.text) {
		t.Errorf("error = %q, want one naming %s and saying %q", msg, path, tc.text)
	}
	if len(pkgs) < tc.minPkgs {
		t.Errorf("read %d packages, want at least %d", len(pkgs), tc.minPkgs)
	}
	for _, p := range pkgs {
		if p.Name == "" || p.Version == "" || p.Type != pkgdb.TypeRPM {
			t.Errorf("package %+v accepted", p)
		}
	}
}

func TestReadRPMBerkeleyBtreeCorrupt(t *testing.T) {
	const ps = 512 // the btree-be fixture's page size
	be := binary.BigEndian
	for _, tc := range []corrupt{
		{"root loop", func(t *testing.T, b []byte) []byte {
			root := be.Uint32(b[88:])
			page := b[int(root)*ps:]
			off := be.Uint16(page[26:])
			be.PutUint32(page[off+4:], root)
			return b
		}, pkgdb.ErrMalformed, "is reached twice", 0},
		{"leaf loop", func(t *testing.T, b []byte) []byte {
			l := chainedPage(t, b, ps, 5, be)
			be.PutUint32(b[l*ps+16:], uint32(l))
			return b
		}, pkgdb.ErrMalformed, "is reached twice", 1},
		{"root is a meta page", func(t *testing.T, b []byte) []byte { be.PutUint32(b[88:], 0); return b }, pkgdb.ErrMalformed, "page 0 is outside the file's pages", 0},
		{"leaf item past the page", func(t *testing.T, b []byte) []byte {
			l := bdbPages(b, ps, 5)[0]
			off := be.Uint16(b[l*ps+26:])
			b[l*ps+int(off)+2] = 1
			be.PutUint16(b[l*ps+int(off):], 0xfff0)
			return b
		}, pkgdb.ErrMalformed, "runs past the page", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readDamaged(t, tc, filepath.Join(fixtureDir(fixtureLayouts[2]), "Packages"), "Packages", pkgdb.ReadRPMBerkeley)
		})
	}
}

// ndbSlotOffsets returns the byte offsets of the used slots of an ndb
// file.
func ndbSlotOffsets(b []byte) []int {
	le := binary.LittleEndian
	npages := int(le.Uint32(b[12:]))
	var offs []int
	for off := 32; off < npages*4096; off += 16 {
		if le.Uint32(b[off+8:]) != 0 {
			offs = append(offs, off)
		}
	}
	return offs
}

func TestReadRPMNDBCorrupt(t *testing.T) {
	le := binary.LittleEndian
	all := len(rpmFixture) - len(rpmFixtureDeleted) + 1
	blob := func(b []byte, slot int) int { return int(le.Uint32(b[slot+8:])) * 16 }
	for _, tc := range []corrupt{
		{"empty", func(t *testing.T, b []byte) []byte { return nil }, pkgdb.ErrMalformed, "ndb file of 0 bytes is shorter than its first 4096-byte slot page", 0},
		{"magic", func(t *testing.T, b []byte) []byte { copy(b, "RpmQ"); return b }, pkgdb.ErrMalformed, `magic "RpmQ" is not ndb's "RpmP"`, 0},
		{"version", func(t *testing.T, b []byte) []byte { le.PutUint32(b[4:], 3); return b }, pkgdb.ErrUnsupported, "ndb format version 3", 0},
		{"no slot pages", func(t *testing.T, b []byte) []byte { le.PutUint32(b[12:], 0); return b }, pkgdb.ErrMalformed, "0 slot pages of 4096 bytes", 0},
		{"huge slot pages", func(t *testing.T, b []byte) []byte { le.PutUint32(b[12:], 0xffffffff); return b }, pkgdb.ErrMalformed, "4294967295 slot pages of 4096 bytes in a file of", 0},
		{"truncated", func(t *testing.T, b []byte) []byte {
			end := 0
			for _, s := range ndbSlotOffsets(b) {
				end = max(end, int(le.Uint32(b[s+8:])+le.Uint32(b[s+12:]))*16)
			}
			return b[:end-100]
		}, pkgdb.ErrMalformed, "(truncated)", all - 2},
		{"slot magic", func(t *testing.T, b []byte) []byte { copy(b[ndbSlotOffsets(b)[0]:], "Slop"); return b }, pkgdb.ErrMalformed, `has magic "Slop", not "Slot"`, all - 1},
		{"slot in the slot pages", func(t *testing.T, b []byte) []byte { le.PutUint32(b[ndbSlotOffsets(b)[0]+8:], 1); return b }, pkgdb.ErrMalformed, "at block 1,", all - 1},
		{"slot past the file", func(t *testing.T, b []byte) []byte { le.PutUint32(b[ndbSlotOffsets(b)[0]+8:], 0xfffffff0); return b }, pkgdb.ErrMalformed, "past the file's", all - 1},
		{"huge blob", func(t *testing.T, b []byte) []byte { le.PutUint32(b[ndbSlotOffsets(b)[0]+12:], 0xffffffff); return b }, pkgdb.ErrMalformed, "past the file's", all - 1},
		{"overlap", func(t *testing.T, b []byte) []byte {
			s := ndbSlotOffsets(b)
			copy(b[s[1]+8:s[1]+16], b[s[0]+8:s[0]+16])
			return b
		}, pkgdb.ErrMalformed, "overlaps the blob before it", all - 2},
		{"blob magic", func(t *testing.T, b []byte) []byte { copy(b[blob(b, ndbSlotOffsets(b)[0]):], "BlbX"); return b }, pkgdb.ErrMalformed, `has magic "BlbX", not "BlbS"`, all - 1},
		{"blob owner", func(t *testing.T, b []byte) []byte { le.PutUint32(b[blob(b, ndbSlotOffsets(b)[0])+4:], 9999); return b }, pkgdb.ErrMalformed, "belongs to package 9999", all - 1},
		{"blob length", func(t *testing.T, b []byte) []byte {
			le.PutUint32(b[blob(b, ndbSlotOffsets(b)[0])+12:], 1<<30)
			return b
		}, pkgdb.ErrMalformed, "blob of 1073741824 bytes needs", all - 1},
		{"checksum", func(t *testing.T, b []byte) []byte { b[blob(b, ndbSlotOffsets(b)[0])+40] ^= 0x55; return b }, pkgdb.ErrMalformed, "blob checksum", all - 1},
		{"tail magic", func(t *testing.T, b []byte) []byte {
			s := ndbSlotOffsets(b)[0]
			end := blob(b, s) + int(le.Uint32(b[s+12:]))*16
			copy(b[end-4:], "BlbZ")
			return b
		}, pkgdb.ErrMalformed, `blob tail has magic "BlbZ"`, all - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readDamaged(t, tc, ndbFixture, "Packages.db", pkgdb.ReadRPMNDB)
		})
	}
}

// TestReadRPMBerkeleyChecksummed makes a BerkeleyDB file with page
// checksums, which RPM never wrote and rpm's own bdb_ro cannot read either:
// the error says so and names the file.
func TestReadRPMBerkeleyChecksummed(t *testing.T) {
	load := lookTool(t, "db_load", "db5.3_load")
	path := filepath.Join(t.TempDir(), "Packages")
	in := fmt.Sprintf("VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n 01000000\n %s\nDATA=END\n", hex.EncodeToString(rpmFixture[0].header()))
	cmd := exec.Command(load, "-c", "chksum=1", path)
	cmd.Stdin = strings.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", load, err, out)
	}
	_, err := pkgdb.ReadRPMBerkeley(t.Context(), path)
	if !errors.Is(err, pkgdb.ErrUnsupported) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "page checksums") {
		t.Errorf("error = %v, want ErrUnsupported naming %s and page checksums", err, path)
	}
}

// benchPackages is a fleet-sized RPM database: 2,000 packages whose
// headers average about 20 KB, as the file lists of a RHEL 7 host make
// them.
func benchPackages() []rpmPkg {
	pkgs := rpmPackages(2000)
	for i := range pkgs {
		pkgs[i].pad = (i * 7919) % 40000
	}
	return pkgs
}

// benchDir is where the benchmarks leave their databases: $MIG_BENCH_RPM_DIR
// when set (to time `rpm -qa` on the same files), else a temporary one.
func benchDir(b *testing.B, name string) string {
	if d := os.Getenv("MIG_BENCH_RPM_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	return filepath.Join(b.TempDir(), name)
}

// BenchmarkReadRPMBerkeley reads a 2,000-package hash Packages made by
// db_load with 4096-byte pages (RPM's usual layout).
func BenchmarkReadRPMBerkeley(b *testing.B) {
	pkgs := benchPackages()
	path := writeBerkeley(b, benchDir(b, "bdb"), berkeleyLayout{"hash", 4096, false}, pkgs)
	benchRead(b, path, len(pkgs), pkgdb.ReadRPMBerkeley)
}

// BenchmarkReadRPMNDB reads a 2,000-package Packages.db written by RPM's
// own ndb code: set $MIG_NDBPUT to the driver described at
// TestRPMFixturesUpdate.
func BenchmarkReadRPMNDB(b *testing.B) {
	put := os.Getenv("MIG_NDBPUT")
	if put == "" {
		b.Skip("MIG_NDBPUT not set")
	}
	pkgs := benchPackages()
	path := filepath.Join(benchDir(b, "ndb"), "Packages.db")
	writeNDB(b, put, path, pkgs, nil)
	benchRead(b, path, len(pkgs), pkgdb.ReadRPMNDB)
}

func benchRead(b *testing.B, path string, n int, read func(context.Context, string) ([]pkgdb.Package, error)) {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		pkgs, err := read(b.Context(), path)
		if err != nil || len(pkgs) != n {
			b.Fatalf("read %d packages, err %v", len(pkgs), err)
		}
	}
}

// TestReadRPMBerkeleyDeletedItem flags one btree pair as deleted, as
// BerkeleyDB does while a cursor still points at it: that package is
// skipped, without an error, and the others are read.
func TestReadRPMBerkeleyDeletedItem(t *testing.T) {
	const ps = 512 // the btree-be fixture's page size
	be := binary.BigEndian
	b, err := os.ReadFile(filepath.Join(fixtureDir(fixtureLayouts[2]), "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := bdbPages(b, ps, 5)[0]
	page := b[leaf*ps : (leaf+1)*ps]
	// The first key that is not record 0 (which sorts first).
	var deleted uint32
	for i := 0; i < int(be.Uint16(page[20:])) && deleted == 0; i += 2 {
		keyOff := be.Uint16(page[26+2*i:])
		if deleted = be.Uint32(page[keyOff+3:]); deleted != 0 {
			page[keyOff+2] |= 0x80
		}
	}
	if deleted == 0 {
		t.Fatal("no package key on the first leaf")
	}
	path := filepath.Join(t.TempDir(), "Packages")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := pkgdb.ReadRPMBerkeley(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	pkgdb.Sort(got)
	if d := cmp.Diff(wantPackages(rpmFixture, int(deleted)), got); d != "" {
		t.Errorf("ReadRPMBerkeley with package %d deleted (-want +got):\n%s", deleted, d)
	}
}

// TestReadRPMCancelled stops every reader when its context is done.
func TestReadRPMCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, l := range fixtureLayouts {
		if _, err := pkgdb.ReadRPMBerkeley(ctx, filepath.Join(fixtureDir(l), "Packages")); !errors.Is(err, context.Canceled) {
			t.Errorf("ReadRPMBerkeley(%s) error = %v, want context.Canceled", l, err)
		}
	}
	if _, err := pkgdb.ReadRPMNDB(ctx, ndbFixture); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadRPMNDB error = %v, want context.Canceled", err)
	}
}
