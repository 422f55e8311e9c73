package scribe

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
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

func TestParseSeed(t *testing.T) {
	p, err := Parse([]byte(seedPolicy))
	if err != nil {
		t.Fatalf("Parse(seed policy): %v", err)
	}
	if p.Len() != 1 {
		t.Errorf("Len() = %d, want 1", p.Len())
	}
	doc := p.Document()
	if got := doc.Objects[0].Package.Name; got != "libnss3:amd64" {
		t.Errorf("package name = %q, want libnss3:amd64", got)
	}
}

func TestParseErrors(t *testing.T) {
	obj := `{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}`
	doc := func(objects, tests string) string {
		return `{"objects":[` + objects + `],"tests":[` + tests + `]}`
	}
	tests := []struct {
		name string
		in   string
		want []string // the error contains each
	}{
		{"unknown object type", doc(`{"object":"reg","registry":{"key":"x"}}`, `{"test":"t","object":"reg","noop":{}}`),
			[]string{`object "reg"`, `"registry"`}},
		{"no object type", doc(`{"object":"empty"}`, `{"test":"t","object":"empty","noop":{}}`),
			[]string{`object "empty"`, "no object type"}},
		{"two object types", doc(`{"object":"two","package":{"name":"a"},"raw":{"identifiers":[{"identifier":"a","value":"b"}]}}`, `{"test":"t","object":"two","noop":{}}`),
			[]string{`object "two"`, "2 object types"}},
		{"missing object", doc(obj, `{"test":"t1","object":"nope","noop":{}}`), []string{`test "t1"`, `object "nope" does not exist`}},
		{"test without object", doc(obj, `{"test":"t1","noop":{}}`), []string{`test "t1"`, "no object"}},
		{"if cycle", doc(obj, `{"test":"a","object":"o","noop":{},"if":["b"]},{"test":"b","object":"o","noop":{},"if":["c"]},{"test":"c","object":"o","noop":{},"if":["a"]}`),
			[]string{"cycle", `test "`}},
		{"if self", doc(obj, `{"test":"a","object":"o","noop":{},"if":["a"]}`), []string{`test "a"`, "itself"}},
		{"if missing", doc(obj, `{"test":"a","object":"o","noop":{},"if":["zz"]}`), []string{`test "a"`, `"zz"`, "does not exist"}},
		{"bad test regexp", doc(obj, `{"test":"re","object":"o","regexp":{"value":"a(b"}}`), []string{`test "re"`, `"a(b"`}},
		{"bad collectmatch", doc(`{"object":"k","package":{"collectmatch":"[z-a]"}}`, `{"test":"t","object":"k","noop":{}}`),
			[]string{`object "k"`, `collectmatch "[z-a]"`}},
		{"bad expression", doc(`{"object":"f","filecontent":{"path":"/etc","file":"x","expression":"(("}}`, `{"test":"t","object":"f","noop":{}}`),
			[]string{`object "f"`, `expression "(("`}},
		{"bad file regexp", doc(`{"object":"f","filename":{"path":"/etc","file":"*x"}}`, `{"test":"t","object":"f","noop":{}}`),
			[]string{`object "f"`, `file "*x"`}},
		{"unknown operation", doc(obj, `{"test":"v","object":"o","evr":{"operation":"~=","value":"1"}}`), []string{`test "v"`, `operation "~="`}},
		{"unknown evr type", doc(obj, `{"test":"v","object":"o","evr":{"operation":"<","value":"1","type":"pacman"}}`), []string{`test "v"`, `"pacman"`}},
		{"empty evr value", doc(obj, `{"test":"v","object":"o","evr":{"operation":"<","value":" "}}`), []string{`test "v"`, "empty"}},
		{"two test types", doc(obj, `{"test":"n","object":"o","noop":{},"exactmatch":{"value":"x"}}`), []string{`test "n"`, "2 test types"}},
		{"unknown test field", doc(obj, `{"test":"u","object":"o","noop":{},"severity":"high"}`), []string{`test "u"`, `"severity"`}},
		{"duplicate object", doc(obj+","+obj, `{"test":"t","object":"o","noop":{}}`), []string{`object "o"`, "twice"}},
		{"duplicate test", doc(obj, `{"test":"t","object":"o","noop":{}},{"test":"t","object":"o","noop":{}}`), []string{`test "t"`, "twice"}},
		{"no tests", doc(obj, ``), []string{"no tests"}},
		{"unnamed object", doc(`{"raw":{"identifiers":[{"identifier":"a","value":"b"}]}}`, `{"test":"t","object":"o","noop":{}}`), []string{"object #1 has no name"}},
		{"package without name", doc(`{"object":"p","package":{}}`, `{"test":"t","object":"p","noop":{}}`), []string{`object "p"`, "neither"}},
		{"unknown package type", doc(`{"object":"p","package":{"name":"x","type":"msi"}}`, `{"test":"t","object":"p","noop":{}}`), []string{`object "p"`, `"msi"`}},
		{"import chain cycle", doc(`{"object":"a","filecontent":{"path":"/","file":"x","expression":"y","import-chain":["b"]}},{"object":"b","filecontent":{"path":"/","file":"x","expression":"y","import-chain":["a"]}}`, `{"test":"t","object":"a","noop":{}}`),
			[]string{"import-chain cycle"}},
		{"import chain missing", doc(`{"object":"a","filecontent":{"path":"/","file":"x","expression":"y","import-chain":["zz"]}}`, `{"test":"t","object":"a","noop":{}}`),
			[]string{`object "a"`, `"zz"`}},
		{"bad variable", `{"variables":[{"key":"a b","value":"x"}],"objects":[` + obj + `],"tests":[{"test":"t","object":"o","noop":{}}]}`, []string{`variable "a b"`}},
		{"trailing data", seedPolicy + `{}`, []string{"after"}},
		{"not JSON", `{"objects":`, []string{"unexpected EOF"}},
		{"unknown top field", `{"objects":[],"tests":[],"rules":[]}`, []string{`"rules"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse = %v, want an error", p)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		seedPolicy,
		`{"variables":[{"key":"root","value":"/etc"}],"objects":[{"object":"f","filecontent":{"path":"${root}","file":"^os-release$","expression":"^ID=(\\S+)","import-chain":["g"]}},{"object":"g","filename":{"path":"${chain_root}","file":"x"}}],"tests":[{"test":"a","object":"f","exactmatch":{"value":"debian"}},{"test":"b","object":"g","noop":{},"if":["a"],"expectedresult":false}]}`,
		`{"objects":[{"object":"k","package":{"collectmatch":"^linux-image","onlynewest":true,"type":"dpkg"}}],"tests":[{"test":"k","object":"k","evr":{"operation":">=","value":"5.10","type":"rpm"},"tags":[{"key":"a","value":"b"}],"aliases":["CVE-1"]}]}`,
		`{"objects":[{"object":"o","raw":{"identifiers":[{"identifier":"i","value":"v"}]}}],"tests":[{"test":"a","object":"o","regexp":{"value":"("}}]}`,
		`{"objects":[],"tests":[{"test":"a","object":"o","noop":{},"if":["a"]}]}`,
		`[]`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		// An accepted policy re-encodes to an accepted policy with the same
		// tests, and evaluates without panicking (on no files and no
		// packages).
		again, err := json.Marshal(p.Document())
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded policy %s refused: %v", again, err)
		}
		if q.Len() != p.Len() {
			t.Errorf("re-encoded policy has %d tests, want %d", q.Len(), p.Len())
		}
		res, err := p.Evaluate(t.Context(), Env{Root: t.TempDir(), Packages: PackageList{}})
		if err != nil {
			t.Fatalf("Evaluate: %v", err)
		}
		if len(res) != p.Len() {
			t.Errorf("Evaluate returned %d results for %d tests", len(res), p.Len())
		}
	})
}
