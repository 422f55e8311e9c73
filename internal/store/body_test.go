package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/action"
)

func TestBodyRefusesInvalidParameters(t *testing.T) {
	for _, p := range []string{"", "{", `{"a":1}x`, "nul", "{\"a\":\"\xff\"}"} {
		a := &action.Action{ID: 1, Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(p)}}}
		if b, err := EncodeActionBody(a); err == nil {
			t.Errorf("EncodeActionBody with parameters %q = %s, want an error", p, b)
		}
	}
}

// FuzzBody checks that any valid JSON parameters survive the stored body
// byte for byte, with the rest of the signed fields.
func FuzzBody(f *testing.F) {
	for _, seed := range []struct{ params, name, sig string }{
		{`{}`, "n", ""},
		{"{\n  \"a\": [1, 2.50, -0e0],\n  \"b\": \"\\u00e9<&>\"\n}", "find <passwd>", "sig"},
		{`{"a":{"a":{"a":null}}}`, "\u2713", "-----BEGIN PGP SIGNATURE-----\n\n=x\n"},
		{`[1,2,3]`, "array", "s"},
		{`"just a string"`, "", ""},
		{" \t{\"dup\":1,\"dup\":2}\r\n", "dup", ""},
	} {
		f.Add(seed.params, seed.name, seed.sig)
	}
	f.Fuzz(func(t *testing.T, params, name, sig string) {
		a := &action.Action{
			ID: 42, Name: name, Target: "TRUE",
			ValidFrom:     time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
			ExpireAfter:   time.Date(2025, 1, 2, 4, 4, 5, 6, time.UTC),
			Operations:    []action.Operation{{Module: "file", Parameters: json.RawMessage(params)}, {Module: "pkg", Parameters: json.RawMessage(`{}`)}},
			PGPSignatures: []string{sig},
		}
		body, err := EncodeActionBody(a)
		if !json.Valid([]byte(params)) || !utf8.ValidString(params) || !utf8.ValidString(name) || !utf8.ValidString(sig) {
			if err == nil {
				t.Fatalf("EncodeActionBody accepted parameters that are not JSON or text that is not UTF-8: %q %q %q", params, name, sig)
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeActionBody: %v", err)
		}
		if !json.Valid(body) {
			t.Fatalf("body is not valid JSON: %q", body)
		}
		var got action.Action
		if err := DecodeActionBody(body, &got); err != nil {
			t.Fatalf("DecodeActionBody(%q): %v", body, err)
		}
		if len(got.Operations) != 2 || !bytes.Equal(got.Operations[0].Parameters, bytes.Trim([]byte(params), " \t\r\n")) {
			t.Fatalf("parameters changed: got %+v, want %q", got.Operations, params)
		}
		if len(got.PGPSignatures) != 1 || got.PGPSignatures[0] != sig {
			t.Fatalf("signatures = %q, want [%q]", got.PGPSignatures, sig)
		}
		if got.Name != name || got.ID != a.ID ||
			!got.ValidFrom.Equal(a.ValidFrom) || !got.ExpireAfter.Equal(a.ExpireAfter) {
			t.Fatalf("decoded action %+v differs from %+v", got, a)
		}
	})
}
