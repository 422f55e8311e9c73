package agentdestroy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
)

func debugSetting(k, v string) debug.BuildSetting { return debug.BuildSetting{Key: k, Value: v} }

func TestParseParameters(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{`{"pid":4242,"version":"1.2.3"}`, ""},
		{`{"pid":4242,"version":"20150122+1ef7d1d.prod"}`, ""},
		{`{"pid":1,"version":"1"}`, "pid 1"},
		{`{"pid":-5,"version":"1"}`, "pid -5"},
		{`{"version":"1"}`, "pid 0"},
		{`{"pid":42,"version":""}`, `version ""`},
		{`{"pid":42,"version":"1 2"}`, `version "1 2"`},
		{`{"pid":42,"version":"1","x":true}`, "unknown field"},
		{`{"pid":"42","version":"1"}`, "cannot unmarshal"},
	} {
		_, err := ParseParameters([]byte(tc.in))
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ParseParameters(%s): %v", tc.in, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidParameters) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseParameters(%s) error = %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestSetFlagsRefuses(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("agentdestroy module is not registered")
	}
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	build := module.SetFlags(m, fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if raw, r, err := build(); err == nil || r != nil || !strings.Contains(err.Error(), "mig action -i") {
		t.Errorf("build = %s, %v, %v; want an error pointing to action files", raw, r, err)
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	var got bytes.Buffer
	for i, el := range []Elements{
		{PID: 4242, Version: "1.2.3", Stopped: true, Signal: "SIGTERM"},
		{PID: 77, Version: "1.2.2", Stopped: true, Signal: "SIGKILL"},
		{PID: 78, Version: "1.2.2"},
	} {
		raw, _ := json.Marshal(el)
		if err := m.PrintResult(&got, []string{"web1", "web2", "web3"}[i], action.Result{Success: el.Stopped, FoundAnything: el.Stopped, Elements: raw}); err != nil {
			t.Fatal(err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{`{"pid":4242,"version":"1.2.3"}`, `{"pid":1,"version":"x"}`, `{}`, ``} {
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
		if r.p.PID <= 1 || !versionRE.MatchString(r.p.Version) || r.mainPackage != MainPackage {
			t.Errorf("parameters %q accepted as %+v", data, r)
		}
	})
}
