//go:build migtest

package testmodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/testmodule"
)

func TestParseParameters(t *testing.T) {
	tests := []struct {
		params  string
		wantErr bool
	}{
		{`{"mode":"ok","marker":"m"}`, false},
		{`{"mode":"sleep","duration":"2s"}`, false},
		{`{"mode":"hang","children":2}`, false},
		{`{"mode":"dance"}`, true},
		{`{"mode":"sleep","duration":"soon"}`, true},
		{`{"mode":"sleep","duration":"-1s"}`, true},
		{`{"mode":"hang","children":100}`, true},
		{`{"mode":"ok","extra":1}`, true},
		{`{"mode":"big","count":3}`, false},
		{`{"mode":"big","count":-1}`, true},
		{`{"mode":"big","count":10001}`, true},
	}
	for _, tt := range tests {
		_, _, err := module.Parse(testmodule.Name, []byte(tt.params))
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("Parse(%s) error = %v, want error %v", tt.params, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, testmodule.ErrInvalidParameters) {
			t.Errorf("Parse(%s) error = %v, want %v", tt.params, err, testmodule.ErrInvalidParameters)
		}
	}
}

func TestRunAndPrint(t *testing.T) {
	res, err := module.RunLocal(t.Context(), testmodule.Name, []byte(`{"mode":"ok","marker":"here"}`), module.Env{})
	if err != nil {
		t.Fatal(err)
	}
	var el testmodule.Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	if !res.Success || !res.FoundAnything || el.Marker != "here" {
		t.Errorf("result = %+v, want success with marker %q", res, "here")
	}
	m, _ := module.Lookup(testmodule.Name)
	var b bytes.Buffer
	if err := m.PrintResult(&b, "agent1", res); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "agent1 marker here\n"; got != want {
		t.Errorf("PrintResult = %q, want %q", got, want)
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := module.RunLocal(ctx, testmodule.Name, []byte(`{"mode":"sleep","duration":"1h"}`), module.Env{})
	if !errors.Is(err, module.ErrTimeout) {
		t.Errorf("RunLocal error = %v, want %v", err, module.ErrTimeout)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("sleep did not stop with its context")
	}
}

func TestFlags(t *testing.T) {
	m, _ := module.Lookup(testmodule.Name)
	fs := flag.NewFlagSet("testmodule", flag.ContinueOnError)
	build := module.SetFlags(m, fs)
	if err := fs.Parse([]string{"-mode", "sleep", "-duration", "1s"}); err != nil {
		t.Fatal(err)
	}
	raw, r, err := build()
	if err != nil || r == nil {
		t.Fatalf("build() = %v, error %v; want a runner", r, err)
	}
	if got, want := string(raw), `{"mode":"sleep","duration":"1s"}`; got != want {
		t.Errorf("build() = %s, want %s", got, want)
	}
}
