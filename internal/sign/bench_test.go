package sign

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
)

// scribeAction returns an action with one scribe operation whose policy has
// n package tests (about 160 bytes of parameters per test: 5,000 tests are
// about 0.8 MB), as "mig scribe -path" builds it.
func scribeAction(tb testing.TB, n int) *action.Action {
	tb.Helper()
	var doc strings.Builder
	doc.WriteString(`{"objects":[`)
	for i := range n {
		if i > 0 {
			doc.WriteByte(',')
		}
		fmt.Fprintf(&doc, `{"object":"pkg%d","package":{"name":"libexample%d"}}`, i, i)
	}
	doc.WriteString(`],"tests":[`)
	for i := range n {
		if i > 0 {
			doc.WriteByte(',')
		}
		fmt.Fprintf(&doc, `{"test":"t%d","name":"DSA-%d-1","object":"pkg%d","evr":{"operation":"<","value":"2:3.%d.2-1"}}`, i, 1000+i, i, i%100)
	}
	doc.WriteString(`]}`)
	params, err := json.Marshal(map[string]json.RawMessage{"scribedoc": json.RawMessage(doc.String())})
	if err != nil {
		tb.Fatal(err)
	}
	a := testAction()
	a.Name = "scribe policy"
	a.Operations = []action.Operation{{Module: "scribe", Parameters: params}}
	if err := a.Validate(); err != nil {
		tb.Fatal(err)
	}
	return a
}

// benchSigner returns a signer and a keyring that trusts it.
func benchSigner(tb testing.TB) (Signer, *Keyring) {
	tb.Helper()
	priv, pub, _, err := GenerateKey("Bench", "bench@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := NewKeySigner(priv, nil)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := ReadKeyring(strings.NewReader(string(pub)))
	if err != nil {
		tb.Fatal(err)
	}
	return s, k
}

// BenchmarkLaunchScribe5000 is what the investigator's client does with an
// action it launches: check it, sign it, and encode the request body.
// "checked" is how mig does it, checking and encoding the action once
// (Check, SignChecked); "separate" is how it did before: Validate, then
// SignAction's own Validate and Encoding, three passes over the
// parameters.
func BenchmarkLaunchScribe5000(b *testing.B) {
	a := scribeAction(b, 5000)
	s, _ := benchSigner(b)
	b.Run("checked", func(b *testing.B) {
		b.SetBytes(int64(len(a.Operations[0].Parameters)))
		b.ReportAllocs()
		for b.Loop() {
			c, err := a.Check()
			if err != nil {
				b.Fatal(err)
			}
			signed, err := SignChecked(c, s)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(signed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("separate", func(b *testing.B) {
		b.SetBytes(int64(len(a.Operations[0].Parameters)))
		b.ReportAllocs()
		for b.Loop() {
			if err := a.Validate(); err != nil {
				b.Fatal(err)
			}
			if err := a.Validate(); err != nil {
				b.Fatal(err)
			}
			enc, err := a.Encoding()
			if err != nil {
				b.Fatal(err)
			}
			sig, err := s.Sign(enc)
			if err != nil {
				b.Fatal(err)
			}
			c := *a
			c.PGPSignatures = []string{sig}
			if _, err := json.Marshal(&c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyScribe5000 is what an agent does with a signed action it
// received: check it and verify its signature (the keyring's cache of
// verified signatures is emptied each time, as an agent sees each action
// once). "checked" is the agent's way (Check, VerifyChecked), "separate"
// the way before (Validate, VerifyAction).
func BenchmarkVerifyScribe5000(b *testing.B) {
	a := scribeAction(b, 5000)
	s, k := benchSigner(b)
	if err := SignAction(a, s); err != nil {
		b.Fatal(err)
	}
	b.Run("checked", func(b *testing.B) {
		b.SetBytes(int64(len(a.Operations[0].Parameters)))
		b.ReportAllocs()
		for b.Loop() {
			k.verified.reset()
			c, err := a.Check()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := VerifyChecked(c, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("separate", func(b *testing.B) {
		b.SetBytes(int64(len(a.Operations[0].Parameters)))
		b.ReportAllocs()
		for b.Loop() {
			k.verified.reset()
			if err := a.Validate(); err != nil {
				b.Fatal(err)
			}
			if _, err := VerifyAction(a, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}
