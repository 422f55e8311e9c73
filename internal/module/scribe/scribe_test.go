package scribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
	"github.com/migplatform/mig/internal/pkgdb"
	"github.com/migplatform/mig/internal/scribe"
)

// seedPolicy is the libnss3 policy of the seed documents, as written.
const seedPolicy = `{
  "objects": [
    { "object": "libnss3-package", "package": { "name": "libnss3:amd64" } }
  ],
  "tests": [
    {
      "test": "libnss3 test",
      "object": "libnss3-package",
      "evr": { "operation": "<", "value": "2:3.19.2" }
    }
  ]
}`

func writePolicy(t *testing.T, policy string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("scribe module is not registered")
	}
	seed := writePolicy(t, seedPolicy)
	// A file over MaxPolicyFile (sparse: zeros that take no room) is
	// refused before it is read whole, as "-path /dev/zero" is.
	huge := writePolicy(t, "")
	if err := os.Truncate(huge, MaxPolicyFile+1); err != nil {
		t.Fatal(err)
	}
	cycle := writePolicy(t, `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}],
	  "tests":[{"test":"a","object":"o","noop":{},"if":["b"]},{"test":"b","object":"o","noop":{},"if":["a"]}]}`)
	unknownObj := writePolicy(t, `{"objects":[{"object":"reg","registry":{}}],"tests":[{"test":"t","object":"reg","noop":{}}]}`)
	missing := writePolicy(t, `{"objects":[],"tests":[{"test":"t","object":"ghost","noop":{}}]}`)
	badRe := writePolicy(t, `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}],"tests":[{"test":"t","object":"o","regexp":{"value":"(["}}]}`)
	badOp := writePolicy(t, `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}],"tests":[{"test":"t","object":"o","evr":{"operation":"!=","value":"1"}}]}`)
	tests := []struct {
		name    string
		args    []string
		want    string // the canonical parameters' fields besides scribedoc
		wantErr []string
	}{
		{name: "seed", args: []string{"-path", seed}, want: `{}`},
		{name: "onlytrue human", args: []string{"-path", seed, "-onlytrue", "-human"}, want: `{"human":true,"onlytrue":true}`},
		{name: "json", args: []string{"-path", seed, "-json"}, want: `{"json":true}`},
		{name: "no path", args: []string{}, wantErr: []string{"-path is required"}},
		{name: "missing file", args: []string{"-path", "/does/not/exist.json"}, wantErr: []string{"/does/not/exist.json"}},
		{name: "huge file", args: []string{"-path", huge}, wantErr: []string{huge, "split it"}},
		{name: "human and json", args: []string{"-path", seed, "-human", "-json"}, wantErr: []string{"both"}},
		{name: "if cycle", args: []string{"-path", cycle}, wantErr: []string{"cycle", `test "`}},
		{name: "unknown object type", args: []string{"-path", unknownObj}, wantErr: []string{`object "reg"`, `"registry"`}},
		{name: "missing object", args: []string{"-path", missing}, wantErr: []string{`test "t"`, `"ghost"`}},
		{name: "bad regex", args: []string{"-path", badRe}, wantErr: []string{`test "t"`, `"(["`}},
		{name: "bad operator", args: []string{"-path", badOp}, wantErr: []string{`test "t"`, `"!="`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := moduletest.Build(t, m, tt.args, tt.wantErr)
			if raw == nil {
				return
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(raw, &fields); err != nil {
				t.Fatal(err)
			}
			if _, ok := fields["scribedoc"]; !ok {
				t.Fatalf("build() = %s, no scribedoc", raw)
			}
			delete(fields, "scribedoc")
			rest, _ := json.Marshal(fields)
			if got, _ := action.Canonical(rest); string(got) != tt.want {
				t.Errorf("build() options = %s, want %s", got, tt.want)
			}
			if _, err := m.ParseParameters(raw); err != nil {
				t.Errorf("ParseParameters(build()) = %v", err)
			}
		})
	}
}

func TestParseParametersErrors(t *testing.T) {
	doc := `{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}],"tests":[{"test":"t","object":"o","noop":{}}]}`
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"empty", `{}`, []string{"no scribedoc"}},
		{"null doc", `{"scribedoc":null}`, []string{"no scribedoc"}},
		{"both shapes", `{"scribedoc":` + doc + `,"tests":[]}`, []string{"both"}},
		{"unknown field", `{"scribedoc":` + doc + `,"verbose":true}`, []string{`"verbose"`}},
		{"human and json", `{"scribedoc":` + doc + `,"human":true,"json":true}`, []string{"both set"}},
		{"bad policy", `{"scribedoc":{"objects":[],"tests":[{"test":"t","object":"x","noop":{}}]}}`, []string{`test "t"`, `"x"`}},
		{"trailing", `{"scribedoc":` + doc + `} x`, []string{"after"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseParameters([]byte(tt.in))
			if !errors.Is(err, ErrInvalidParameters) {
				t.Fatalf("error = %v, want ErrInvalidParameters", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	// A bare document is accepted as the parameters.
	if _, err := ParseParameters([]byte(seedPolicy)); err != nil {
		t.Errorf("bare seed policy refused: %v", err)
	}
}

// TestRunLocalSeed runs the seed's libnss3 policy on this machine, as
// "mig scribe -path policy.json -t local" does, and checks the answer
// against the package database.
func TestRunLocalSeed(t *testing.T) {
	pkgs, err := pkgdb.Installed(t.Context(), "/")
	if errors.Is(err, pkgdb.ErrNoDatabase) {
		t.Skip("no package database on this machine")
	}
	var nss *pkgdb.Package
	for i, p := range pkgs {
		if p.Name == "libnss3" && p.Arch == "amd64" && p.Type == pkgdb.TypeDpkg {
			nss = &pkgs[i]
		}
	}
	params, err := json.Marshal(map[string]any{"scribedoc": json.RawMessage(seedPolicy), "human": true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := module.RunLocal(t.Context(), Name, params, module.Env{})
	if err != nil {
		t.Fatalf("RunLocal: %v", err)
	}
	if !res.Success {
		t.Fatalf("result failed: %v", res.Errors)
	}
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	if len(el.Results) != 1 || el.Format != scribe.FormatHuman {
		t.Fatalf("elements = %+v, want one human result", el)
	}
	r := el.Results[0]
	if nss == nil {
		if r.Result() != scribe.ResultFalse || len(r.Results) != 0 {
			t.Errorf("libnss3:amd64 is not installed, result = %+v", r)
		}
		return
	}
	want := scribe.CompareDpkg(nss.Version, "2:3.19.2") < 0
	if r.MasterResult != want || res.FoundAnything != want {
		t.Errorf("libnss3 %s: master %t, found %t; want %t", nss.Version, r.MasterResult, res.FoundAnything, want)
	}
	if len(r.Results) != 1 || r.Results[0].Identifier != "libnss3:amd64" || r.Results[0].Value != nss.Version {
		t.Errorf("sub-results = %+v, want libnss3:amd64 %s", r.Results, nss.Version)
	}
	var st Statistics
	if err := json.Unmarshal(res.Statistics, &st); err != nil || st.Packages != len(pkgs) || st.Tests != 1 {
		t.Errorf("statistics = %+v (%v), want 1 test and %d packages", st, err, len(pkgs))
	}
}

// statusFile writes a dpkg status file of n packages under a new root and
// returns the root.
func statusFile(t testing.TB, n int) string {
	root := t.TempDir()
	dir := filepath.Join(root, "var", "lib", "dpkg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "Package: pkg%04d\nStatus: install ok installed\nArchitecture: amd64\nVersion: %d:%d.%d.%d-%dubuntu%d\nDescription: fixture\n\n",
			i, i%3, i%7, i%13, i%17, i%5, i%4)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// bigPolicy is a policy of n package tests, one per package name pkgNNNN.
func bigPolicy(t testing.TB, n int) []byte {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("pkg%04d", i)
	}
	return policyOn(t, n, names)
}

// policyOn is a policy of n package tests, each on its own object, on the
// package names in turn.
func policyOn(t testing.TB, n int, names []string) []byte {
	var doc scribe.Document
	for i := range n {
		obj := fmt.Sprintf("obj%04d", i)
		doc.Objects = append(doc.Objects, scribe.Object{Object: obj, Package: &scribe.PackageObject{Name: names[i%len(names)]}})
		doc.Tests = append(doc.Tests, scribe.Test{Test: fmt.Sprintf("USN-%04d-1 %s", i, names[i%len(names)]), Object: obj,
			EVR: &scribe.EVRTest{Operation: "<", Value: "1:3.6.8-2ubuntu2"}})
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRunFixture(t *testing.T) {
	root := statusFile(t, 3000)
	params, err := json.Marshal(map[string]any{"scribedoc": json.RawMessage(bigPolicy(t, 5000)), "onlytrue": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(params) > action.MaxParametersSize {
		t.Errorf("a 5,000-test policy is %d bytes, over the parameters limit %d", len(params), action.MaxParametersSize)
	}
	r, err := ParseParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	run := r.(*runner)
	run.root = root
	calls := 0
	src := run.source
	run.source = func(ctx context.Context, root string) ([]scribe.Package, error) {
		calls++
		return src(ctx, root)
	}
	res := run.Run(t.Context(), module.Env{})
	if !res.Success || calls != 1 {
		t.Fatalf("Run: success %t, errors %v, %d package reads (want 1)", res.Success, res.Errors, calls)
	}
	var st Statistics
	if err := json.Unmarshal(res.Statistics, &st); err != nil {
		t.Fatal(err)
	}
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	// Count by hand what must be true.
	want := 0
	for i := range 3000 {
		v := fmt.Sprintf("%d:%d.%d.%d-%dubuntu%d", i%3, i%7, i%13, i%17, i%5, i%4)
		if scribe.CompareDpkg(v, "1:3.6.8-2ubuntu2") < 0 {
			want++
		}
	}
	if st.Tests != 5000 || st.Packages != 3000 || st.True != want || st.False != 5000-want || len(el.Results) != want {
		t.Errorf("statistics %+v with %d results, want 5000 tests, 3000 packages, %d true", st, len(el.Results), want)
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	results := []scribe.TestResult{
		{TestID: "libnss3 test", Name: "USN-2557-1", MasterResult: true, HasTrueResults: true,
			Aliases: []string{"CVE-2015-2721"}, Tags: []scribe.Tag{{Key: "release", Value: "Ubuntu 14.04 LTS"}},
			Results: []scribe.SubResult{{Result: true, Identifier: "libnss3:amd64", Value: "2:3.17.4-0ubuntu1"}}},
		{TestID: "openssl test", Results: []scribe.SubResult{{Identifier: "openssl:amd64", Value: "1.0.1f-1ubuntu2.27"}}},
		{TestID: "broken", Error: "object \"x\": listing installed packages: no package database found", Results: []scribe.SubResult{}},
	}
	var got bytes.Buffer
	for _, format := range []string{scribe.FormatLine, scribe.FormatHuman, scribe.FormatJSON} {
		el, err := json.Marshal(Elements{Format: format, Results: results})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PrintResult(&got, "web1.example.net", action.Result{Success: true, FoundAnything: true, Elements: el}); err != nil {
			t.Fatal(err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
	var empty bytes.Buffer
	if err := m.PrintResult(&empty, "a", action.Result{Success: true}); err != nil || empty.Len() != 0 {
		t.Errorf("PrintResult(no elements) = %q, %v; want nothing", empty.String(), err)
	}
	if err := m.PrintResult(&empty, "a", action.Result{Elements: json.RawMessage(`[1]`)}); err == nil {
		t.Error("PrintResult(bad elements): error = nil, want one")
	}
}

func FuzzParseParameters(f *testing.F) {
	f.Add([]byte(seedPolicy))
	f.Add([]byte(`{"scribedoc":` + seedPolicy + `,"onlytrue":true,"human":true}`))
	f.Add([]byte(`{"scribedoc":null,"tests":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseParameters(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidParameters) {
				t.Errorf("error %v does not wrap ErrInvalidParameters", err)
			}
			return
		}
		// Accepted parameters re-encode to accepted parameters.
		again, err := json.Marshal(r.(*runner).params)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseParameters(again); err != nil {
			t.Errorf("re-encoded parameters %s refused: %v", again, err)
		}
	})
}

// BenchmarkEvaluate evaluates a 5,000-test policy, reading the package
// database each time: this machine's (when it has one) and a fixture of
// 3,000 dpkg packages.
//
// On the fixture the policy names pkg0000 to pkg4999: 3,000 tests find
// their package, 2,000 do not (a vulnerability database names many
// packages a machine does not have). On this machine every test names an
// installed package, the names taken in turn.
func BenchmarkEvaluate(b *testing.B) {
	for _, bc := range []struct{ name, root string }{
		{"fixture3000", statusFile(b, 3000)},
		{"thismachine", "/"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkgs, err := pkgdb.Installed(b.Context(), bc.root)
			if errors.Is(err, pkgdb.ErrNoDatabase) || len(pkgs) == 0 {
				b.Skip("no package database")
			}
			doc := bigPolicy(b, 5000)
			if bc.root == "/" {
				var names []string
				for _, p := range pkgs {
					names = append(names, p.Name)
				}
				doc = policyOn(b, 5000, names)
			}
			params, err := json.Marshal(map[string]any{"scribedoc": json.RawMessage(doc), "onlytrue": true})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				r, err := ParseParameters(params)
				if err != nil {
					b.Fatal(err)
				}
				run := r.(*runner)
				run.root = bc.root
				if res := run.Run(b.Context(), module.Env{}); !res.Success {
					b.Fatal(res.Errors)
				}
			}
			b.ReportMetric(float64(len(params))/1e6, "MB-params")
		})
	}
}
