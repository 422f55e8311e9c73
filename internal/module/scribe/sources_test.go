package scribe

import (
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/pkgdb"
	"github.com/migplatform/mig/internal/scribe"
)

// rpmBlob encodes one RPM header as rpmdb.sqlite stores it (no lead, no
// magic): the index of string tags name (1000), version (1001), release
// (1002) and arch (1022), and an INT32 epoch (1003) when epoch >= 0.
func rpmBlob(name, version, release, arch string, epoch int) []byte {
	var index, data []byte
	add := func(tag, typ uint32, value []byte) {
		for typ == 4 && len(data)%4 != 0 {
			data = append(data, 0)
		}
		for _, v := range []uint32{tag, typ, uint32(len(data)), 1} {
			index = binary.BigEndian.AppendUint32(index, v)
		}
		data = append(data, value...)
	}
	for _, f := range []struct {
		tag uint32
		s   string
	}{{1000, name}, {1001, version}, {1002, release}, {1022, arch}} {
		add(f.tag, 6, append([]byte(f.s), 0))
	}
	if epoch >= 0 {
		add(1003, 4, binary.BigEndian.AppendUint32(nil, uint32(epoch)))
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(len(index)/16))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(append(b, index...), data...)
}

// mixedRoot writes a root with the three package databases: a dpkg status
// file, an apk installed file and an rpmdb.sqlite.
func mixedRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(pkgdb.DpkgStatusPath, "Package: libnss3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:3.17.2-1\n\n"+
		"Package: libnss3\nStatus: install ok installed\nArchitecture: i386\nVersion: 2:3.87.1-1+deb12u2\n\n")
	write(pkgdb.APKInstalledPath, "P:musl\nV:1.2.4_rc1-r0\nA:x86_64\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\n\n")
	dbPath := filepath.Join(root, pkgdb.RPMSQLitePaths[0])
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{
		rpmBlob("openssl", "1.0.2k", "16.el7", "x86_64", 1),
		rpmBlob("kernel", "4.18.0", "477.el8", "x86_64", -1),
		rpmBlob("kernel", "4.18.0", "513.el8", "x86_64", -1),
	} {
		if _, err := db.Exec(`INSERT INTO Packages (blob) VALUES (?)`, b); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestRunPackageSources runs the module on a root with dpkg, apk and rpm
// databases, read by internal/pkgdb: each package is compared with its own
// database's ordering, and the tests below are written so that the other
// orderings would give another answer.
func TestRunPackageSources(t *testing.T) {
	root := mixedRoot(t)
	doc := `{
	  "objects": [
	    {"object": "nss", "package": {"name": "libnss3:amd64"}},
	    {"object": "musl", "package": {"name": "musl"}},
	    {"object": "musl-dpkg-only", "package": {"name": "musl", "type": "dpkg"}},
	    {"object": "openssl", "package": {"name": "openssl", "type": "rpm"}},
	    {"object": "kernel", "package": {"name": "kernel", "onlynewest": true}},
	    {"object": "some", "package": {"collectmatch": "^(libnss3|musl|openssl)$"}}
	  ],
	  "tests": [
	    {"test": "dpkg: libnss3 older than 2:3.19.2", "object": "nss", "evr": {"operation": "<", "value": "2:3.19.2"}},
	    {"test": "apk: rc before the release", "object": "musl", "evr": {"operation": "<", "value": "1.2.4-r0"}},
	    {"test": "apk as dpkg: rc after the release", "object": "musl", "evr": {"operation": "<", "value": "1.2.4-r0", "type": "dpkg"}},
	    {"test": "type restricts the database", "object": "musl-dpkg-only"},
	    {"test": "rpm: a missing release matches any", "object": "openssl", "evr": {"operation": "=", "value": "1:1.0.2k"}},
	    {"test": "rpm: newest kernel", "object": "kernel", "evr": {"operation": ">=", "value": "4.18.0-513.el8"}},
	    {"test": "collectmatch over all databases", "object": "some", "noop": {}}
	  ]
	}`
	params, err := json.Marshal(map[string]any{"scribedoc": json.RawMessage(doc)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	run := r.(*runner)
	run.root = root
	res := run.Run(t.Context(), module.Env{})
	if !res.Success || len(res.Errors) != 0 {
		t.Fatalf("Run: success %t, errors %v", res.Success, res.Errors)
	}
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	type sub = scribe.SubResult
	want := map[string]struct {
		result bool
		subs   []sub
	}{
		"dpkg: libnss3 older than 2:3.19.2":  {true, []sub{{Result: true, Identifier: "libnss3:amd64", Value: "2:3.17.2-1"}}},
		"apk: rc before the release":         {true, []sub{{Result: true, Identifier: "musl:x86_64", Value: "1.2.4_rc1-r0"}}},
		"apk as dpkg: rc after the release":  {false, []sub{{Result: false, Identifier: "musl:x86_64", Value: "1.2.4_rc1-r0"}}},
		"type restricts the database":        {false, []sub{}},
		"rpm: a missing release matches any": {true, []sub{{Result: true, Identifier: "openssl:x86_64", Value: "1:1.0.2k-16.el7"}}},
		"rpm: newest kernel":                 {true, []sub{{Result: true, Identifier: "kernel:x86_64", Value: "4.18.0-513.el8"}}},
		"collectmatch over all databases": {true, []sub{
			{Result: true, Identifier: "musl:x86_64", Value: "1.2.4_rc1-r0"},
			{Result: true, Identifier: "libnss3:amd64", Value: "2:3.17.2-1"},
			{Result: true, Identifier: "libnss3:i386", Value: "2:3.87.1-1+deb12u2"},
			{Result: true, Identifier: "openssl:x86_64", Value: "1:1.0.2k-16.el7"}}},
	}
	if len(el.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(el.Results), len(want))
	}
	for _, tr := range el.Results {
		w, ok := want[tr.TestID]
		if !ok {
			t.Errorf("unexpected test %q", tr.TestID)
			continue
		}
		if tr.Error != "" || tr.MasterResult != w.result {
			t.Errorf("test %q: result %t, error %q; want %t", tr.TestID, tr.MasterResult, tr.Error, w.result)
		}
		if d := cmp.Diff(w.subs, tr.Results); d != "" {
			t.Errorf("test %q: sub-results (-want +got):\n%s", tr.TestID, d)
		}
	}
	var st Statistics
	if err := json.Unmarshal(res.Statistics, &st); err != nil || st.Packages != 7 {
		t.Errorf("statistics %+v (%v), want 7 packages read", st, err)
	}
}
