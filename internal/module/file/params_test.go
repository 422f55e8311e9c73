package file_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/file"
	"github.com/migplatform/mig/internal/module/moduletest"
)

func TestParseParametersErrors(t *testing.T) {
	tests := []struct {
		name   string
		params string
		want   []string // the error must contain each
	}{
		{"no searches", `{}`, []string{"no searches"}},
		{"empty searches", `{"searches":{}}`, []string{"no searches"}},
		{"no paths", `{"searches":{"x":{"names":["a"]}}}`, []string{"'x'", "no paths"}},
		{"relative path", `{"searches":{"x":{"paths":["etc"]}}}`, []string{"'x'", `"etc"`, "not absolute"}},
		{"empty path", `{"searches":{"x":{"paths":[""]}}}`, []string{"not absolute"}},
		{"bad name regex", `{"searches":{"x":{"paths":["/"],"names":["("]}}}`, []string{"'x'", `name "("`}},
		{"bad negated name regex", `{"searches":{"x":{"paths":["/"],"names":["!a("]}}}`, []string{`name "!a("`}},
		{"bad content regex", `{"searches":{"x":{"paths":["/"],"contents":["[z-a]"]}}}`, []string{`content "[z-a]"`}},
		{"short md5", `{"searches":{"x":{"paths":["/"],"md5":["abc"]}}}`, []string{"'x'", `md5 "abc"`, "32"}},
		{"md5 not hex", `{"searches":{"x":{"paths":["/"],"md5":["` + strings.Repeat("g", 32) + `"]}}}`,
			[]string{strings.Repeat("g", 32), "not hexadecimal"}},
		{"sha1 length", `{"searches":{"x":{"paths":["/"],"sha1":["` + strings.Repeat("a", 32) + `"]}}}`,
			[]string{"sha1", strings.Repeat("a", 32)}},
		{"sha2 length", `{"searches":{"x":{"paths":["/"],"sha2":["` + strings.Repeat("a", 50) + `"]}}}`,
			[]string{"sha2", strings.Repeat("a", 50)}},
		{"sha256 length", `{"searches":{"x":{"paths":["/"],"sha256":["73b0d95541c84965fa42c3e257bb349957b3be626dec9d55efcc6e"]}}}`,
			[]string{"sha256", "73b0d95541c84965fa42c3e257bb349957b3be626dec9d55efcc6e"}},
		{"unknown top field", `{"searches":{"x":{"paths":["/"]}},"foo":1}`, []string{`"foo"`}},
		{"unknown search field", `{"searches":{"x":{"paths":["/"],"colour":["red"]}}}`, []string{`"colour"`}},
		{"bad size", `{"searches":{"x":{"paths":["/"],"sizes":["<10x"]}}}`, []string{`size "<10x"`}},
		{"empty size", `{"searches":{"x":{"paths":["/"],"sizes":[""]}}}`, []string{`size ""`}},
		{"size overflow", `{"searches":{"x":{"paths":["/"],"sizes":[">99999999999t"]}}}`, []string{`size ">99999999999t"`, "too large"}},
		{"bad mode", `{"searches":{"x":{"paths":["/"],"modes":["(rwx"]}}}`, []string{`mode "(rwx"`}},
		{"bad mtime unit", `{"searches":{"x":{"paths":["/"],"mtimes":["<10y"]}}}`, []string{`mtime "<10y"`}},
		{"mtime without prefix", `{"searches":{"x":{"paths":["/"],"mtimes":["10d"]}}}`, []string{`mtime "10d"`}},
		{"sha3 length", `{"searches":{"x":{"paths":["/"],"sha3":["` + strings.Repeat("a", 40) + `"]}}}`, []string{"sha3", "56, 64, 96 or 128"}},
		{"sha256 alias given a sha512 value", `{"searches":{"x":{"paths":["/"],"sha256":["` + strings.Repeat("a", 128) + `"]}}}`,
			[]string{`sha256 "` + strings.Repeat("a", 128) + `"`, "128 characters", "want 64"}},
		{"sha384 alias given a sha256 value", `{"searches":{"x":{"paths":["/"],"sha384":["` + strings.Repeat("a", 64) + `"]}}}`,
			[]string{`sha384 "`, "want 96"}},
		{"sha512 alias given a sha384 value", `{"searches":{"x":{"paths":["/"],"sha512":["` + strings.Repeat("a", 96) + `"]}}}`,
			[]string{`sha512 "`, "want 128"}},
		{"sha3 not hex", `{"searches":{"x":{"paths":["/"],"sha3":["` + strings.Repeat("z", 56) + `"]}}}`,
			[]string{`sha3 "` + strings.Repeat("z", 56) + `"`, "not hexadecimal"}},
		{"size with two prefixes", `{"searches":{"x":{"paths":["/"],"sizes":["<>10"]}}}`, []string{`size "<>10"`}},
		{"negative size", `{"searches":{"x":{"paths":["/"],"sizes":["-5"]}}}`, []string{`size "-5"`}},
		{"mtime without a number", `{"searches":{"x":{"paths":["/"],"mtimes":["<d"]}}}`, []string{`mtime "<d"`}},
		{"mtime overflow", `{"searches":{"x":{"paths":["/"],"mtimes":["<99999999999999d"]}}}`, []string{`mtime "<99999999999999d"`, "too large"}},
		{"empty mode", `{"searches":{"x":{"paths":["/"],"modes":[""]}}}`, []string{`mode ""`}},
		{"path with a NUL byte", `{"searches":{"x":{"paths":["/etc\u0000x"]}}}`, []string{"NUL"}},
		{"one bad search among good ones", `{"searches":{"good":{"paths":["/"]},"bad":{"paths":["/"],"names":["a)"]}}}`,
			[]string{"'bad'", `name "a)"`}},
		{"sha512 alias length", `{"searches":{"x":{"paths":["/"],"sha512":["abcd"]}}}`, []string{`sha512 "abcd"`}},
		{"unknown mismatch", `{"searches":{"x":{"paths":["/"],"options":{"mismatch":["colour"]}}}}`, []string{`mismatch "colour"`}},
		{"unknown option", `{"searches":{"x":{"paths":["/"],"options":{"depth":2}}}}`, []string{`"depth"`}},
		{"matchall and matchany", `{"searches":{"x":{"paths":["/"],"options":{"matchall":true,"matchany":true}}}}`,
			[]string{"'x'", "matchall and matchany are both true"}},
		{"neither matchall nor matchany", `{"searches":{"x":{"paths":["/"],"options":{"matchall":false,"matchany":false}}}}`,
			[]string{"both false"}},
		{"negative maxdepth", `{"searches":{"x":{"paths":["/"],"options":{"maxdepth":-1}}}}`, []string{"maxdepth -1"}},
		{"zero matchlimit", `{"searches":{"x":{"paths":["/"],"options":{"matchlimit":0}}}}`, []string{"matchlimit 0"}},
		{"negative maxerrors", `{"searches":{"x":{"paths":["/"],"options":{"maxerrors":-3}}}}`, []string{"maxerrors -3"}},
		{"empty label", `{"searches":{"":{"paths":["/"]}}}`, []string{"label is empty"}},
		{"wrong type", `{"searches":{"x":{"paths":"/"}}}`, []string{"paths"}},
		{"trailing data", `{"searches":{"x":{"paths":["/"]}}} {}`, []string{"after"}},
		{"mis-cased key", `{"searches":{"x":{"Paths":["/etc"]}}}`, []string{`"Paths"`, "case-sensitive"}},
		{"mis-cased top key", `{"Searches":{"x":{"paths":["/"]}}}`, []string{`"Searches"`}},
		{"long s key", `{"searches":{"x":{"pathſ":["/etc"]}}}`, []string{`"pathſ"`}},
		{"both cases", `{"searches":{"x":{"paths":["/tmp"],"Paths":["/etc"]}}}`, []string{`"Paths"`}},
		{"mis-cased option", `{"searches":{"x":{"paths":["/"],"options":{"MaxDepth":1}}}}`, []string{`"MaxDepth"`}},
		{"duplicate key", `{"searches":{"x":{"paths":["/tmp"],"paths":["/etc"]}}}`, []string{`duplicate key "paths"`}},
		{"not an object", `[]`, []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := file.ParseParameters([]byte(tt.params))
			moduletest.Refused(t, tt.params, err, file.ErrInvalidParameters, tt.want)
		})
	}
}

func FuzzParseParameters(f *testing.F) {
	for _, seed := range []string{
		`{"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"],"contents":["root"]}}}`,
		`{"searches":{"iocs":{"paths":["/usr/bin","/tmp"],"sha256":["` + strings.Repeat("ab", 32) + `"],"md5":["` + strings.Repeat("0", 32) + `"]}}}`,
		`{"searches":{"a":{"paths":["/"],"names":["!x"],"options":{"maxdepth":2,"matchany":true,"matchlimit":5,"maxerrors":0,"returnsha256":true}}}}`,
		`{"searches":{"a":{"paths":["/"],"options":{"matchall":true,"matchany":true}}}}`,
		`{"searches":{"m":{"paths":["/etc"],"sizes":["<10m",">1k","42"],"modes":["^-rw"],"mtimes":["<90d",">5h"],"sha3":["` + strings.Repeat("0", 56) + `"],"sha512":["` + strings.Repeat("f", 128) + `"],"options":{"macroal":true,"mismatch":["content","sha2"],"decompress":true}}}}`,
		`{"searches":{"m":{"paths":["/"],"contents":["(?i)pass(word)?\s*=","!^#"],"options":{"mismatch":["nosuch"]}}}}`,
		`{"searches":{}}`,
		`{"searches":{"x":{"paths":["rel"],"names":["("]}}}`,
		`{"searches":null}`,
		`[1,2]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := file.ParseParameters(data)
		if err != nil {
			if !errors.Is(err, file.ErrInvalidParameters) {
				t.Errorf("error %v does not wrap ErrInvalidParameters", err)
			}
			if r != nil {
				t.Errorf("runner %v returned with error %v", r, err)
			}
			return
		}
		if r == nil {
			t.Fatal("nil runner without error")
		}
		if !json.Valid(data) {
			t.Errorf("invalid JSON %q accepted", data)
		}
		// Accepted parameters must survive a round trip unchanged in meaning.
		var p file.Parameters
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("accepted parameters do not decode: %v", err)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.ParseParameters(again); err != nil {
			t.Errorf("re-encoded parameters %s refused: %v", again, err)
		}
	})
}

func TestPrintResultEmpty(t *testing.T) {
	m, ok := module.Lookup(file.Name)
	if !ok {
		t.Fatal("file module is not registered")
	}
	for _, r := range []action.Result{
		{Success: true},
		{Success: true, Elements: json.RawMessage(`{"s":[]}`)},
		{Success: false, Errors: []string{"boom"}},
	} {
		var b bytes.Buffer
		if err := m.PrintResult(&b, "agent1", r); err != nil {
			t.Errorf("PrintResult(%+v) error = %v", r, err)
		}
		if b.Len() != 0 {
			t.Errorf("PrintResult(%+v) = %q, want nothing", r, b.String())
		}
	}
	if err := m.PrintResult(&bytes.Buffer{}, "agent1", action.Result{Elements: json.RawMessage(`[1]`)}); err == nil {
		t.Error("PrintResult of bad elements: error = nil, want one")
	}
}
