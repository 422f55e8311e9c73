package scribe

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var fixturePackages = PackageList{
	{Name: "libnss3", Version: "2:3.87.1-1+deb12u2", Arch: "amd64", Type: TypeDpkg},
	{Name: "libnss3", Version: "2:3.17.2-1", Arch: "i386", Type: TypeDpkg},
	{Name: "openssl", Version: "3.0.11-1~deb12u2", Arch: "amd64", Type: TypeDpkg},
	{Name: "linux-image-6.1.0-13-amd64", Version: "6.1.55-1", Arch: "amd64", Type: TypeDpkg},
	{Name: "linux-image-6.1.0-18-amd64", Version: "6.1.76-1", Arch: "amd64", Type: TypeDpkg},
	{Name: "kernel", Version: "4.18.0-477.el8", Arch: "x86_64", Type: TypeRPM},
	{Name: "kernel", Version: "4.18.0-513.el8", Arch: "x86_64", Type: TypeRPM},
	{Name: "musl", Version: "1.2.4_git20230717-r4", Arch: "x86_64", Type: TypeAPK},
}

// writeTree writes files (path -> content) under a new root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// evalPolicy is a policy that uses every object and test type.
const evalPolicy = `{
  "variables": [{"key": "etc", "value": "/etc"}],
  "objects": [
    {"object": "libnss3-package", "package": {"name": "libnss3:amd64"}},
    {"object": "libnss3-all", "package": {"name": "libnss3"}},
    {"object": "kernels", "package": {"collectmatch": "^linux-image-[0-9]", "onlynewest": false}},
    {"object": "rhel-kernel", "package": {"name": "kernel", "onlynewest": true}},
    {"object": "musl", "package": {"name": "musl", "type": "apk"}},
    {"object": "musl-as-dpkg", "package": {"name": "musl", "type": "dpkg"}},
    {"object": "release", "filecontent": {"path": "${etc}", "file": "^os-release$", "expression": "^VERSION_CODENAME=(\\S+)"}},
    {"object": "version", "filecontent": {"path": "/etc/os-release", "file": "os-release", "expression": "^VERSION_ID=\"(\\d+)\\.?(\\d*)\"", "concat": "$1-$2"}},
    {"object": "sshd", "filecontent": {"path": "/etc/ssh", "file": "^sshd_config$", "expression": "^(?i)include\\s+(\\S+)", "import-chain": ["sshd-included"]}},
    {"object": "sshd-included", "filecontent": {"path": "${chain_root}", "file": "\\.conf$", "expression": "^(?i)permitrootlogin\\s+(\\S+)"}},
    {"object": "boot", "filename": {"path": "/boot", "file": "^vmlinuz-(.+)$"}},
    {"object": "nothing", "filename": {"path": "/does/not/exist", "file": "x"}},
    {"object": "bad-var", "filename": {"path": "${nope}", "file": "x"}},
    {"object": "fixed", "raw": {"identifiers": [{"identifier": "fix", "value": "2:3.90"}]}}
  ],
  "tests": [
    {"test": "bookworm", "object": "release", "exactmatch": {"value": "bookworm"}},
    {"test": "jammy", "object": "release", "exactmatch": {"value": "jammy"}},
    {"test": "libnss3 test", "object": "libnss3-package", "evr": {"operation": "<", "value": "2:3.19.2"}},
    {"test": "libnss3 any arch", "object": "libnss3-all", "evr": {"operation": "<", "value": "2:3.19.2"},
     "if": ["bookworm"], "name": "DSA-0000-1", "aliases": ["CVE-2015-0001"], "tags": [{"key": "severity", "value": "high"}]},
    {"test": "libnss3 on jammy", "object": "libnss3-all", "evr": {"operation": "<", "value": "2:3.19.2"}, "if": ["jammy"]},
    {"test": "kernel old", "object": "kernels", "evr": {"operation": "<", "value": "6.1.76-1"}},
    {"test": "rhel kernel newest", "object": "rhel-kernel", "evr": {"operation": ">=", "value": "4.18.0-513.el8"}},
    {"test": "musl rc", "object": "musl", "evr": {"operation": ">", "value": "1.2.4_rc1-r0"}},
    {"test": "musl forced dpkg", "object": "musl-as-dpkg", "noop": {}},
    {"test": "version", "object": "version", "exactmatch": {"value": "12-"}},
    {"test": "root login", "object": "sshd", "regexp": {"value": "^(?i)yes$"}},
    {"test": "boot kernels", "object": "boot", "evr": {"operation": "=", "value": "6.1.0-18-amd64"}},
    {"test": "absent", "object": "nothing", "noop": {}},
    {"test": "absent expected", "object": "nothing", "noop": {}, "expectedresult": false},
    {"test": "bad var", "object": "bad-var", "noop": {}},
    {"test": "after error", "object": "fixed", "noop": {}, "if": ["bad var"]},
    {"test": "raw", "object": "fixed", "evr": {"operation": ">=", "value": "2:3.87.1-1+deb12u2"}, "description": "line one\nline two"}
  ]
}`

func evalFixture(t *testing.T) []TestResult {
	t.Helper()
	root := writeTree(t, map[string]string{
		"etc/os-release":                 "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\r\n",
		"etc/ssh/sshd_config":            "Include /etc/ssh/sshd_config.d\nPort 22\n",
		"etc/ssh/sshd_config.d/a.conf":   "PermitRootLogin yes\n",
		"etc/ssh/sshd_config.d/b.conf":   "permitrootlogin no\n",
		"etc/ssh/sshd_config.d/c.ignore": "PermitRootLogin yes\n",
		"boot/vmlinuz-6.1.0-13-amd64":    "",
		"boot/vmlinuz-6.1.0-18-amd64":    "",
		"boot/config-6.1.0-18-amd64":     "",
	})
	p, err := Parse([]byte(evalPolicy))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	calls := 0
	src := PackageSourceFunc(func(context.Context) ([]Package, error) {
		calls++
		return fixturePackages, nil
	})
	res, err := p.Evaluate(t.Context(), Env{Root: root, Packages: src})
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if calls != 1 {
		t.Errorf("the package source was called %d times, want once", calls)
	}
	return res
}

func TestEvaluate(t *testing.T) {
	res := evalFixture(t)
	type sub = SubResult
	want := map[string]struct {
		result string
		subs   []SubResult
		errHas string
	}{
		"bookworm":         {ResultTrue, []sub{{true, "/etc/os-release", "bookworm"}}, ""},
		"jammy":            {ResultFalse, []sub{{false, "/etc/os-release", "bookworm"}}, ""},
		"libnss3 test":     {ResultFalse, []sub{{false, "libnss3:amd64", "2:3.87.1-1+deb12u2"}}, ""},
		"libnss3 any arch": {ResultTrue, []sub{{false, "libnss3:amd64", "2:3.87.1-1+deb12u2"}, {true, "libnss3:i386", "2:3.17.2-1"}}, ""},
		"libnss3 on jammy": {ResultFalse, []sub{}, ""},
		"kernel old": {ResultTrue, []sub{{true, "linux-image-6.1.0-13-amd64:amd64", "6.1.55-1"},
			{false, "linux-image-6.1.0-18-amd64:amd64", "6.1.76-1"}}, ""},
		"rhel kernel newest": {ResultTrue, []sub{{true, "kernel:x86_64", "4.18.0-513.el8"}}, ""},
		"musl rc":            {ResultTrue, []sub{{true, "musl:x86_64", "1.2.4_git20230717-r4"}}, ""},
		"musl forced dpkg":   {ResultFalse, []sub{}, ""},
		"version":            {ResultTrue, []sub{{true, "/etc/os-release", "12-"}}, ""},
		"root login": {ResultTrue, []sub{{false, "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d"},
			{true, "/etc/ssh/sshd_config.d/a.conf", "yes"}, {false, "/etc/ssh/sshd_config.d/b.conf", "no"}}, ""},
		"boot kernels":    {ResultTrue, []sub{{false, "/boot/vmlinuz-6.1.0-13-amd64", "6.1.0-13-amd64"}, {true, "/boot/vmlinuz-6.1.0-18-amd64", "6.1.0-18-amd64"}}, ""},
		"absent":          {ResultFalse, []sub{}, ""},
		"absent expected": {ResultTrue, []sub{}, ""},
		"bad var":         {ResultError, []sub{}, "${nope}"},
		"after error":     {ResultError, []sub{}, `"bad var"`},
		"raw":             {ResultTrue, []sub{{true, "fix", "2:3.90"}}, ""},
	}
	if len(res) != len(want) {
		t.Fatalf("Evaluate returned %d results, want %d", len(res), len(want))
	}
	for _, r := range res {
		w, ok := want[r.TestID]
		if !ok {
			t.Errorf("unexpected result for test %q", r.TestID)
			continue
		}
		if got := r.Result(); got != w.result {
			t.Errorf("test %q: result %s, want %s (error %q)", r.TestID, got, w.result, r.Error)
		}
		if diff := cmp.Diff(w.subs, r.Results); diff != "" {
			t.Errorf("test %q: sub-results (-want +got):\n%s", r.TestID, diff)
		}
		if w.errHas != "" && !strings.Contains(r.Error, w.errHas) {
			t.Errorf("test %q: error %q, want it to contain %q", r.TestID, r.Error, w.errHas)
		}
	}
	if res[3].Name != "DSA-0000-1" || res[3].Aliases[0] != "CVE-2015-0001" || res[3].Tags[0].Value != "high" {
		t.Errorf("metadata not copied: %+v", res[3])
	}
}

func TestEvaluatePackageErrors(t *testing.T) {
	p, err := Parse([]byte(seedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		src  PackageSource
		want string
	}{
		{"no source", nil, "no package source"},
		{"failing source", PackageSourceFunc(func(context.Context) ([]Package, error) {
			return nil, errors.New("status file is garbage")
		}), "status file is garbage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := p.Evaluate(t.Context(), Env{Packages: tt.src})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Result() != ResultError || !strings.Contains(res[0].Error, tt.want) {
				t.Errorf("result %s, error %q; want error containing %q", res[0].Result(), res[0].Error, tt.want)
			}
		})
	}
	// A source that lists some packages and reports a problem with another
	// database still gives results.
	partial := PackageSourceFunc(func(context.Context) ([]Package, error) {
		return fixturePackages, errors.New("rpmdb unreadable")
	})
	res, err := p.Evaluate(t.Context(), Env{Packages: partial})
	if err != nil || res[0].Result() != ResultFalse {
		t.Errorf("partial source: %v, %+v; want a false result", err, res)
	}
}

func TestEvaluateCancelled(t *testing.T) {
	p, err := Parse([]byte(seedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Evaluate(ctx, Env{Packages: fixturePackages}); !errors.Is(err, context.Canceled) {
		t.Errorf("Evaluate with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestEvaluateDependencyOrder checks that a test listed before the tests it
// depends on still sees their results.
func TestEvaluateDependencyOrder(t *testing.T) {
	doc := `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}],"tests":[
	  {"test":"last","object":"o","noop":{},"if":["middle"]},
	  {"test":"middle","object":"o","exactmatch":{"value":"1"},"if":["first"]},
	  {"test":"first","object":"o","noop":{}},
	  {"test":"false","object":"o","exactmatch":{"value":"2"}},
	  {"test":"gated","object":"o","noop":{},"if":["first","false"]}]}`
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Evaluate(t.Context(), Env{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.TestID+"="+r.Result())
	}
	want := []string{"last=true", "middle=true", "first=true", "false=false", "gated=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

func TestPrintGolden(t *testing.T) {
	res := evalFixture(t)
	for _, format := range []string{FormatLine, FormatHuman, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			var got bytes.Buffer
			if err := Print(&got, "web1 ", format, res); err != nil {
				t.Fatal(err)
			}
			if err := Print(&got, "db2 ", format, OnlyTrue(res)); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "print-"+format+".golden")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("Print(%s) differs from %s (-want +got):\n%s", format, golden, diff)
			}
		})
	}
	if err := Print(&bytes.Buffer{}, "", "xml", res); err == nil {
		t.Error("Print(xml): error = nil, want one")
	}
}

func TestFileLimits(t *testing.T) {
	long := strings.Repeat("x", MaxLineSize+10)
	root := writeTree(t, map[string]string{
		"d/1/f":       "v=one\n",
		"d/1/2/f":     "v=two\n",
		"d/1/2/3/f":   "v=three\n",
		"d/long":      "v=" + long + "\nv=after\n",
		"d/noeol":     "v=last",
		"d/crlf":      "v=crlf\r\n",
		"d/nocapture": "match me\n",
	})
	doc := fmt.Sprintf(`{"objects":[
	  {"object":"deep","filecontent":{"path":"/d","file":"^f$","expression":"^v=(\\w+)","maxdepth":4}},
	  {"object":"shallow","filecontent":{"path":"/d","file":"^f$","expression":"^v=(\\w+)","maxdepth":2}},
	  {"object":"lines","filecontent":{"path":"/d","file":"^(long|noeol|crlf)$","expression":"^v=(.{1,8})","maxdepth":1}},
	  {"object":"whole","filecontent":{"path":"/d/nocapture","file":".","expression":"match \\w+"}}],
	 "tests":[{"test":"deep","object":"deep","noop":{}},{"test":"shallow","object":"shallow","noop":{}},
	  {"test":"lines","object":"lines","noop":{}},{"test":"whole","object":"whole","noop":{}}]}`)
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Evaluate(t.Context(), Env{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	values := func(r TestResult) []string {
		var v []string
		for _, s := range r.Results {
			v = append(v, s.Value)
		}
		return v
	}
	for i, want := range [][]string{
		{"three", "two", "one"},
		{"one"},
		{"crlf", "xxxxxxxx", "after", "last"},
		{"match me"},
	} {
		if diff := cmp.Diff(want, values(res[i])); diff != "" {
			t.Errorf("test %q values (-want +got):\n%s", res[i].TestID, diff)
		}
	}
}

// TestScribeCompat evaluates a policy written as Mozilla Scribe's own
// documents are: a concat that is a separator, a test with no evaluation
// (a noop), expectedresult true.
func TestScribeCompat(t *testing.T) {
	root := writeTree(t, map[string]string{
		"srv/testfile0": "var = (1, 5)\nvar = (2, 0)\n",
		"srv/testfile1": "v=7\nv=7.2\n",
	})
	doc := `{
	  "variables": [{"key": "root", "value": "/srv"}],
	  "objects": [
	    {"object": "combined", "filecontent": {"path": "${root}", "file": "testfile0",
	      "expression": "var = \\((\\S+), (\\S+)\\)", "concat": "."}},
	    {"object": "template", "filecontent": {"path": "${root}", "file": "testfile0",
	      "expression": "var = \\((\\S+), (\\S+)\\)", "concat": "$2-$1"}},
	    {"object": "optional", "filecontent": {"path": "${root}", "file": "testfile1",
	      "expression": "^v=(\\d+)(?:\\.(\\d+))?", "concat": "."}}
	  ],
	  "tests": [
	    {"test": "combined-noop", "expectedresult": true, "object": "combined"},
	    {"test": "combined-evr", "object": "combined", "evr": {"operation": "=", "value": "1.5"}},
	    {"test": "template", "object": "template", "exactmatch": {"value": "0-2"}},
	    {"test": "optional", "object": "optional", "noop": {}}
	  ]
	}`
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	res, err := p.Evaluate(t.Context(), Env{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	type sub = SubResult
	want := []TestResult{
		{TestID: "combined-noop", MasterResult: true, HasTrueResults: true,
			Results: []sub{{true, "/srv/testfile0", "1.5"}, {true, "/srv/testfile0", "2.0"}}},
		{TestID: "combined-evr", MasterResult: true, HasTrueResults: true,
			Results: []sub{{true, "/srv/testfile0", "1.5"}, {false, "/srv/testfile0", "2.0"}}},
		{TestID: "template", MasterResult: true, HasTrueResults: true,
			Results: []sub{{false, "/srv/testfile0", "5-1"}, {true, "/srv/testfile0", "0-2"}}},
		{TestID: "optional", MasterResult: true, HasTrueResults: true,
			Results: []sub{{true, "/srv/testfile1", "7."}, {true, "/srv/testfile1", "7.2"}}},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// TestReadValuesNotRegular checks that a FIFO in the place of a file (as
// when one replaces it between the walk and the read) is refused at once,
// not opened and waited on.
func TestReadValuesNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	_, err := readValues(t.Context(), fifo, regexp.MustCompile("x"), "")
	if !errors.Is(err, errNotRegular) {
		t.Errorf("readValues(FIFO) error = %v, want errNotRegular", err)
	}
}

// TestEVROperators checks every operation on a candidate below, equal to
// and above the test's value, with each version ordering.
func TestEVROperators(t *testing.T) {
	for _, tt := range []struct {
		typ, below, value, above string
	}{
		{TypeDpkg, "1.0~rc1-1", "1.0-1", "1.0+b1-1"},
		{TypeRPM, "1.0~rc1-1", "1.0-1", "1.0^git1-1"},
		{TypeAPK, "1.0_rc1-r0", "1.0-r0", "1.0_p1-r0"},
	} {
		for _, op := range []struct {
			op   string
			want [3]bool // below, equal, above
		}{
			{OpLess, [3]bool{true, false, false}},
			{OpLessEqual, [3]bool{true, true, false}},
			{OpEqual, [3]bool{false, true, false}},
			{OpGreaterEqual, [3]bool{false, true, true}},
			{OpGreater, [3]bool{false, false, true}},
		} {
			doc := Document{
				Objects: []Object{{Object: "o", Raw: &RawObject{Identifiers: []RawIdentifier{
					{Identifier: "below", Value: tt.below}, {Identifier: "equal", Value: tt.value}, {Identifier: "above", Value: tt.above}}}}},
				Tests: []Test{{Test: "t", Object: "o", EVR: &EVRTest{Operation: op.op, Value: tt.value, Type: tt.typ}}},
			}
			p, err := Compile(doc)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Evaluate(t.Context(), Env{})
			if err != nil {
				t.Fatal(err)
			}
			var got [3]bool
			for i, s := range res[0].Results {
				got[i] = s.Result
			}
			if got != op.want {
				t.Errorf("%s: %q/%q/%q %s %q = %v, want %v", tt.typ, tt.below, tt.value, tt.above, op.op, tt.value, got, op.want)
			}
		}
	}
}
