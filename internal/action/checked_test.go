package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkWant is what Check must return for a: Validate's error, else
// Encoding's result.
func checkWant(a *Action) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a.Encoding()
}

// TestCheckIsValidateAndEncoding checks that Check refuses what Validate or
// Encoding refuses, with the same error, and encodes what they accept into
// the same bytes.
func TestCheckIsValidateAndEncoding(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Action)
		err    string
	}{
		{"ok", func(a *Action) {}, ""},
		{"two operations and signatures", func(a *Action) {
			a.Operations = append(a.Operations, Operation{Module: "netstat", Parameters: json.RawMessage(` {"ci": ["10.0.0.1"]} `)})
			a.PGPSignatures = []string{"sig"}
			a.Description.Author = "Julien Vehent"
		}, ""},
		{"no name", func(a *Action) { a.Name = " " }, "name is empty"},
		{"dup keys in the second operation", func(a *Action) {
			a.Operations = append(a.Operations, Operation{Module: "file", Parameters: json.RawMessage(`{"a":1,"a":2}`)})
		}, `operation 1 (file): parameters: duplicate object key "a"`},
		{"params not object", func(a *Action) { a.Operations[0].Parameters = json.RawMessage(`"x"`) }, "JSON object"},
		{"author not UTF-8", func(a *Action) { a.Description.Author = "\xff" }, `a signed field is not valid UTF-8: "\xff"`},
		{"threat not UTF-8", func(a *Action) { a.Threat.Ref = "ref\xfe" }, "not valid UTF-8"},
		{"too many signatures", func(a *Action) { a.PGPSignatures = make([]string, MaxSignatures+1) }, "signatures, more than the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := sample()
			tc.change(a)
			wantEnc, wantErr := checkWant(a)
			c, err := a.Check()
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Check error = %v, want ErrInvalid containing %q", err, tc.err)
				}
				if wantErr == nil || err.Error() != wantErr.Error() {
					t.Errorf("Check error = %v, want Validate's or Encoding's: %v", err, wantErr)
				}
				return
			}
			if err != nil || wantErr != nil {
				t.Fatalf("Check error = %v, Validate/Encoding error = %v; want none", err, wantErr)
			}
			if !bytes.Equal(c.Encoding(), wantEnc) {
				t.Errorf("Check encoding:\n%s\nEncoding:\n%s", c.Encoding(), wantEnc)
			}
			if c.ID() != a.ID || c.Target() != a.Target || !c.ExpireAfter().Equal(a.ExpireAfter) ||
				!reflect.DeepEqual(c.Signatures(), a.PGPSignatures) || !reflect.DeepEqual(c.Action(), a) {
				t.Errorf("Checked holds %+v, want %+v", c.Action(), a)
			}
		})
	}
}

// TestCheckedIsASnapshot checks that a Checked keeps the action as it was
// checked, with its encoding: changing the action it was made from, the
// parameter bytes in place, or what it hands out, changes neither.
func TestCheckedIsASnapshot(t *testing.T) {
	a := sample()
	a.PGPSignatures = []string{"sig1"}
	want, err := sample().Encoding()
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Check()
	if err != nil {
		t.Fatal(err)
	}

	a.Target = "name LIKE '%'"
	a.ID++
	a.Operations[0].Parameters[len(a.Operations[0].Parameters)-2] = ' ' // in place
	copy(a.Operations[0].Parameters[2:], "xxxxxxxx")
	a.Operations[0].Module = "netstat"
	a.PGPSignatures[0] = "forged"
	if got := c.Encoding(); !bytes.Equal(got, want) {
		t.Fatalf("encoding after the action changed:\n%s\nwant\n%s", got, want)
	}

	enc := c.Encoding()
	enc[len(enc)-2] = 'X'
	got := c.Action()
	got.Operations[0].Parameters[0] = '['
	got.Target = "all"
	got.PGPSignatures[0] = "forged"
	sigs := c.Signatures()
	sigs[0] = "forged"
	if e := c.Encoding(); !bytes.Equal(e, want) {
		t.Errorf("encoding after what Checked returned changed:\n%s\nwant\n%s", e, want)
	}
	orig := sample()
	orig.PGPSignatures = []string{"sig1"}
	if got := c.Action(); !reflect.DeepEqual(got, orig) {
		t.Errorf("Checked action changed: %+v, want %+v", got, orig)
	}
	// The action that changed encodes differently when checked again.
	if c2, err := a.Check(); err == nil && bytes.Equal(c2.Encoding(), want) {
		t.Errorf("a changed action checks to the old encoding")
	}
}

// fill sets every exported field reachable from v to a non-zero value,
// with one element in every slice and map.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem())
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

// shared returns the path of the first slice, map or pointer that x and y
// share, or "".
func shared(x, y reflect.Value, path string) string {
	switch x.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer:
		if !x.IsNil() && x.Pointer() == y.Pointer() {
			return path
		}
	}
	switch x.Kind() {
	case reflect.Slice:
		for i := range x.Len() {
			if p := shared(x.Index(i), y.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Pointer:
		if !x.IsNil() {
			return shared(x.Elem(), y.Elem(), path)
		}
	case reflect.Struct:
		for i := range x.NumField() {
			if x.Type().Field(i).IsExported() {
				if p := shared(x.Field(i), y.Field(i), path+"."+x.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// TestCloneIsDeep fills every field of an action, including any added
// later, and checks that Clone copies it and shares nothing with it.
func TestCloneIsDeep(t *testing.T) {
	var a Action
	fill(reflect.ValueOf(&a).Elem())
	c := a.Clone()
	if !reflect.DeepEqual(c, &a) {
		t.Fatalf("Clone = %+v, want %+v", c, &a)
	}
	if p := shared(reflect.ValueOf(a), reflect.ValueOf(*c), "Action"); p != "" {
		t.Errorf("Clone shares %s with the original", p)
	}
	// nil and empty stay as they were (they encode differently in JSON).
	empty := &Action{Operations: []Operation{{Parameters: json.RawMessage{}}}, PGPSignatures: []string{}}
	if c := empty.Clone(); c.PGPSignatures == nil || c.Operations[0].Parameters == nil || c.Investigators != nil {
		t.Errorf("Clone of empty slices = %+v", c)
	}
}

// FuzzCheck checks that Check agrees with Validate and Encoding on any
// action file: the same error or the same bytes.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"name":"x","target":"status='online'","validfrom":"2026-01-01T00:00:00Z","expireafter":"2026-01-02T00:00:00Z","operations":[{"module":"file","parameters":{"a":[1,2,{"b":"c"}]}}]}`))
	f.Add([]byte(`{"name":"x","target":"t","validfrom":"2026-01-01T00:00:00Z","expireafter":"2026-01-02T00:00:00Z","operations":[{"module":"m","parameters":{"a":1,"a":2}}]}`))
	f.Add([]byte(`{"name":"x","target":"t","description":{"author":"\udc00"},"validfrom":"2026-01-01T00:00:00Z","expireafter":"2026-01-02T00:00:00Z","operations":[{"module":"m","parameters":{}}],"pgpsignatures":["s"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAction(data)
		if err != nil {
			return
		}
		wantEnc, wantErr := checkWant(a)
		c, err := a.Check()
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("Check error = %v, Validate/Encoding error = %v", err, wantErr)
		case err != nil:
			if err.Error() != wantErr.Error() || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Check error = %v, want %v", err, wantErr)
			}
		case !bytes.Equal(c.Encoding(), wantEnc):
			t.Fatalf("Check encoding:\n%s\nEncoding:\n%s", c.Encoding(), wantEnc)
		}
	})
}
