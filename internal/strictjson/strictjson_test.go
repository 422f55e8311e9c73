package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type inner struct {
	Paths []string `json:"paths"`
	Depth int      `json:"maxdepth,omitempty"`
}

type Embedded struct {
	Flag bool `json:"flag"`
}

type outer struct {
	Embedded
	Name     string            `json:"name"`
	Searches map[string]inner  `json:"searches"`
	List     []inner           `json:"list"`
	Ptr      *inner            `json:"ptr"`
	Raw      json.RawMessage   `json:"raw"`
	Any      any               `json:"any"`
	Labels   map[string]string `json:"labels"`
	NoTag    string
	Skip     string `json:"-"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error; nil for success
	}{
		{"ok", `{"name":"a","searches":{"s":{"paths":["/"]}},"list":[{"paths":[]}],"ptr":{"maxdepth":2},"flag":true,"NoTag":"x"}`, nil},
		{"raw kept as is", `{"raw":{"Paths":1,"Paths":2}}`, nil},
		{"null struct", `{"ptr":null}`, nil},
		{"escaped exact key", `{"n\u0061me":"a"}`, nil},
		{"whitespace", " {\n \"name\" : \"a\" , \"list\" : [ { \"paths\" : [ \"x\" ] } ] }\n", nil},
		{"unknown key", `{"colour":1}`, []string{`unknown field "colour"`}},
		{"trailing", `{} {}`, []string{"data after"}},
		{"trailing garbage", `{}x`, []string{"json: "}},
		{"empty", ``, []string{"json: "}},
		{"syntax", `{"name":}`, []string{"invalid character"}},
		{"mis-cased top", `{"Name":"a"}`, []string{`"Name"`, "case"}},
		{"mis-cased untagged", `{"notag":"a"}`, []string{`"notag"`}},
		{"long s", `{"searches":{"s":{"pathſ":["/etc"]}}}`, []string{`"pathſ"`, "searches.s.pathſ"}},
		{"kelvin", `{"searches":{"s":{"maxdepth":1,"paths":[],"\u212aey":1}}}`, []string{"unknown field"}},
		{"mis-cased in slice", `{"list":[{"paths":[]},{"PATHS":[]}]}`, []string{`"PATHS"`, "list[1].PATHS"}},
		{"mis-cased in pointer", `{"ptr":{"Maxdepth":1}}`, []string{`"Maxdepth"`}},
		{"mis-cased embedded", `{"Flag":true}`, []string{`"Flag"`}},
		{"duplicate top", `{"name":"a","name":"b"}`, []string{`duplicate key "name"`}},
		{"duplicate both cases", `{"searches":{"s":{"paths":["/a"],"Paths":["/etc"]}}}`, []string{`"Paths"`}},
		{"duplicate map key", `{"labels":{"a":"1","a":"2"}}`, []string{`duplicate key "a"`, "labels.a"}},
		{"duplicate in any", `{"any":[{"x":1,"x":2}]}`, []string{`duplicate key "x"`}},
		{"duplicate escaped", `{"name":"a","n\u0061me":"b"}`, []string{`duplicate key "name"`}},
		{"skipped field", `{"Skip":"x"}`, []string{"unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o outer
			err := Decode([]byte(tt.in), &o)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Decode(%s) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode(%s) = nil, want an error with %q", tt.in, tt.want)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Errorf("error %T is not an *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Decode(%s) = %q, want it to contain %q", tt.in, err, w)
				}
			}
		})
	}
}

func TestDecodeDuplicateManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"labels":{`)
	for i := range 40 {
		b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":"v",`)
	}
	b.WriteString(`"kaa":"dup"}}`)
	var o outer
	err := Decode([]byte(b.String()), &o)
	if err == nil || !strings.Contains(err.Error(), `duplicate key "kaa"`) {
		t.Fatalf("Decode = %v, want a duplicate key error", err)
	}
}

func TestDecodeErrorsWrap(t *testing.T) {
	var o outer
	err := Decode([]byte(`{"name":1}`), &o)
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("Decode = %v, want a *json.UnmarshalTypeError inside", err)
	}
	err = Decode([]byte(`{} 1`), &o)
	if !errors.Is(err, ErrTrailingData) {
		t.Errorf("Decode = %v, want ErrTrailingData", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"a","name":"b"}`, `{"searches":{"s":{"Paths":[]}}}`,
		`{"list":[{"paths":["a"]}],"any":{"a":[1,{"b":null}]}}`, `{"raw":{"x":1}} `, `[1]`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var o outer
		err := Decode(data, &o)
		var plain outer
		perr := json.Unmarshal(data, &plain)
		if err == nil && perr != nil {
			t.Fatalf("Decode accepted what json.Unmarshal refuses (%v): %q", perr, data)
		}
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not an *Error", err)
			}
		}
	})
}

var benchDoc = []byte(`{"name":"bench","searches":{"s1":{"paths":["/etc","/usr/bin","/var/log"],"maxdepth":3},"s2":{"paths":["/home"]}},` +
	`"list":[{"paths":["a","b","c"]},{"paths":["d"]},{"paths":["e","f"]}],"labels":{"a":"1","b":"2","c":"3"},"any":{"x":[1,2,{"y":"z"}]}}`)

func BenchmarkDecode(b *testing.B) {
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o outer
			if err := json.Unmarshal(benchDoc, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strictjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o outer
			if err := Decode(benchDoc, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
