package memory

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
)

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("memory module is not registered")
	}
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{[]string{"-lib", "libc"}, `{"searches":{"s1":{"libraries":["libc"]}}}`, ""},
		{[]string{"-name", "^sshd$", "-content", "AKIA[0-9A-Z]{16}", "-bytes", "DEADbeef", "-matchany", "-offset", "10", "-maxlength", "1000", "-window", "128"},
			`{"searches":{"s1":{"names":["^sshd$"],"contents":["AKIA[0-9A-Z]{16}"],"bytes":["DEADbeef"],"options":{"matchany":true,"offset":10,"maxlength":1000,"window":128}}}}`, ""},
		{nil, "", "no filter"},
		{[]string{"-content", "("}, "", `content regex "("`},
		{[]string{"-lib", "[a"}, "", `library regex "[a"`},
		{[]string{"-bytes", "abc"}, "", `bytes "abc"`},
		{[]string{"-bytes", "zz"}, "", `bytes "zz"`},
		{[]string{"-name", "a", "-offset", "-1"}, "", "offset -1"},
		{[]string{"-name", "a", "-maxlength", "-5"}, "", "maxlength -5"},
		{[]string{"-name", "a", "-window", "99999999"}, "", "window 99999999"},
		{[]string{"-name", "a", "-matchall", "-matchany"}, "", "both set"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet(Name, flag.ContinueOnError)
			build := module.SetFlags(m, fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, r, err := build()
			if (err == nil) != (r != nil) {
				t.Errorf("build() runner = %v with error %v, want a runner exactly when there is no error", r, err)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidParameters) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("build error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("build = %s, %v\nwant %s", got, err, tc.want)
			}
		})
	}
	for _, in := range []string{`{"searches":{}}`, `{"searches":{"":{"names":["a"]}}}`, `{"searches":{"a":{"names":["a"],"x":1}}}`, `{"searches":{"a":{"names":["a"]}}} 1`} {
		if _, err := ParseParameters([]byte(in)); !errors.Is(err, ErrInvalidParameters) {
			t.Errorf("ParseParameters(%s) error = %v, want ErrInvalidParameters", in, err)
		}
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	el, err := json.Marshal(Elements{
		"s1": {
			{Process: Process{PID: 812, Name: "sshd"}, Matched: []Hit{{Filter: "name", Value: "^sshd$"}, {Filter: "library", Value: `libssl\.so`, Library: "/usr/lib/x86_64-linux-gnu/libssl.so.3"}}},
			{Process: Process{PID: 4242, Name: "python3"}, Matched: []Hit{{Filter: "content", Value: "AKIA[0-9A-Z]{16}", Address: "0x7f3a12c04010"}, {Filter: "bytes", Value: "deadbeef", Address: "0x55d4c8a01000"}}},
		},
		"empty": {},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := m.PrintResult(&got, "web1.example.net", action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
		t.Fatal(err)
	}
	if err := m.PrintResult(&got, "db2.example.net", action.Result{Success: true}); err != nil {
		t.Fatal(err)
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{
		`{"searches":{"s1":{"libraries":["libc"]}}}`,
		`{"searches":{"s1":{"names":["^sshd$"],"contents":["AKIA"],"bytes":["DEADbeef"],"options":{"matchany":true,"offset":10,"maxlength":1000,"window":128}}}}`,
		`{"searches":{"a":{"bytes":["0x00"],"options":{"matchall":false}}}}`,
		`{"searches":{"a":{}}}`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseParameters(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidParameters) || r != nil {
				t.Errorf("error %v (runner %v) does not wrap ErrInvalidParameters", err, r)
			}
			return
		}
		if len(r.searches) == 0 {
			t.Fatalf("parameters %q accepted without a search", data)
		}
		for _, s := range r.searches {
			if s.filters() == 0 || s.offset < 0 || s.window <= 0 || s.window > MaxWindow {
				t.Errorf("search %+v accepted", s)
			}
			for _, n := range s.needles {
				if len(n) == 0 || len(n) > MaxNeedleBytes {
					t.Errorf("needle of %d bytes accepted", len(n))
				}
			}
		}
	})
}
