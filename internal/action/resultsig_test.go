package action

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signedMessage returns a signed result message of key's agent.
func signedMessage(t testing.TB, key ed25519.PrivateKey) *ResultMessage {
	t.Helper()
	now := time.Date(2026, 12, 7, 14, 0, 0, 123456789, time.FixedZone("x", 3600))
	m := &ResultMessage{
		V: ProtocolVersion, AgentID: AgentID(key.Public().(ed25519.PublicKey)), CommandID: 42, ActionID: 7,
		Status: CmdSuccess, Started: now, Finished: now.Add(time.Second),
		Results: []Result{
			{FoundAnything: true, Success: true,
				Elements:   json.RawMessage("[ {\"file\": \"/etc/<passwd>\", \"size\": 1.50e3, \"k\": \"\\u00e9\"} ]"),
				Statistics: json.RawMessage(`{"files":3,"Files":4}`)},
			{Success: false, Errors: []string{"operation 1 (file): bad\nthing", "\xff"}},
		},
	}
	sig, err := SignResult(key, m.Fields(), ResultSignature{Name: "web01", ActionHash: ActionHash([]byte("enc")),
		Started: m.Started, Finished: m.Finished})
	if err != nil {
		t.Fatalf("SignResult: %v", err)
	}
	m.Signature = sig
	return m
}

func TestResultSignatureRoundTrip(t *testing.T) {
	key := testKey(t)
	m := signedMessage(t, key)
	if err := VerifyResult(m.Fields(), m.Signature); err != nil {
		t.Fatalf("VerifyResult of the signed message: %v", err)
	}
	// Across the relay, into a command as a store keeps it, through the API.
	data, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResult(data)
	if err != nil {
		t.Fatalf("DecodeResult: %v", err)
	}
	results, _ := json.Marshal(got.Results)
	sig, _ := json.Marshal(got.Signature)
	cmd := Command{ID: got.CommandID, AgentID: got.AgentID, Action: Action{ID: got.ActionID}, Status: got.Status}
	if err := json.Unmarshal(results, &cmd.Results); err != nil {
		t.Fatal(err)
	}
	if cmd.Signature, err = DecodeResultSignature(sig); err != nil {
		t.Fatalf("DecodeResultSignature: %v", err)
	}
	api, _ := json.MarshalIndent(cmd, "", "   ")
	var back Command
	if err := json.Unmarshal(api, &back); err != nil {
		t.Fatal(err)
	}
	if err := VerifyResult(back.ResultFields(), back.Signature); err != nil {
		t.Fatalf("VerifyResult after the relay, the store and the API: %v", err)
	}
	// Whitespace and escapes do not matter; elements absent or null are one.
	f := back.ResultFields()
	f.Results = append([]Result(nil), f.Results...)
	f.Results[0].Elements = json.RawMessage("[{\"file\":\"/etc/\\u003cpasswd>\",\n\"size\":1.50e3,\"k\":\"é\"}]")
	f.Results[1].Elements = json.RawMessage("null")
	if err := VerifyResult(f, back.Signature); err != nil {
		t.Errorf("VerifyResult with the same values written differently: %v", err)
	}
}

func TestResultSignatureTamper(t *testing.T) {
	key := testKey(t)
	other := testKey(t)
	tests := []struct {
		name   string
		change func(f *ResultFields, s *ResultSignature)
	}{
		{"agent id", func(f *ResultFields, s *ResultSignature) { f.AgentID = AgentID(other.Public().(ed25519.PublicKey)) }},
		{"command id", func(f *ResultFields, s *ResultSignature) { f.CommandID++ }},
		{"action id", func(f *ResultFields, s *ResultSignature) { f.ActionID++ }},
		{"status", func(f *ResultFields, s *ResultSignature) { f.Status = CmdFailed }},
		{"code", func(f *ResultFields, s *ResultSignature) { f.Code = CodeModuleFailed }},
		{"error", func(f *ResultFields, s *ResultSignature) { f.Error = "x" }},
		{"found", func(f *ResultFields, s *ResultSignature) { f.Results[0].FoundAnything = false }},
		{"success", func(f *ResultFields, s *ResultSignature) { f.Results[1].Success = true }},
		{"element value", func(f *ResultFields, s *ResultSignature) {
			f.Results[0].Elements = bytes.Replace(f.Results[0].Elements, []byte("passwd"), []byte("shadow"), 1)
		}},
		{"element number", func(f *ResultFields, s *ResultSignature) {
			f.Results[0].Elements = bytes.Replace(f.Results[0].Elements, []byte("1.50e3"), []byte("1500"), 1)
		}},
		{"member order", func(f *ResultFields, s *ResultSignature) {
			f.Results[0].Statistics = json.RawMessage(`{"Files":4,"files":3}`)
		}},
		{"statistics dropped", func(f *ResultFields, s *ResultSignature) { f.Results[0].Statistics = nil }},
		{"errors", func(f *ResultFields, s *ResultSignature) { f.Results[1].Errors = f.Results[1].Errors[:1] }},
		{"result dropped", func(f *ResultFields, s *ResultSignature) { f.Results = f.Results[:1] }},
		{"result added", func(f *ResultFields, s *ResultSignature) { f.Results = append(f.Results, Result{}) }},
		{"name", func(f *ResultFields, s *ResultSignature) { s.Name = "db01" }},
		{"action hash", func(f *ResultFields, s *ResultSignature) { s.ActionHash = ActionHash([]byte("other")) }},
		{"no action hash", func(f *ResultFields, s *ResultSignature) { s.ActionHash = "" }},
		{"started", func(f *ResultFields, s *ResultSignature) { s.Started = s.Started.Add(time.Nanosecond) }},
		{"finished", func(f *ResultFields, s *ResultSignature) { s.Finished = time.Time{} }},
		{"signature bit", func(f *ResultFields, s *ResultSignature) { s.Sig[10] ^= 1 }},
		{"signature short", func(f *ResultFields, s *ResultSignature) { s.Sig = s.Sig[:63] }},
		{"other agent's key", func(f *ResultFields, s *ResultSignature) { s.Key = other.Public().(ed25519.PublicKey) }},
		{"resigned by another key", func(f *ResultFields, s *ResultSignature) {
			r, _ := SignResult(other, *f, *s)
			*s = *r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := signedMessage(t, key)
			f := m.Fields()
			f.Results = append([]Result(nil), f.Results...)
			s := *m.Signature
			s.Sig = bytes.Clone(s.Sig)
			tt.change(&f, &s)
			err := VerifyResult(f, &s)
			if !errors.Is(err, ErrForged) {
				t.Fatalf("VerifyResult after changing the %s = %v, want ErrForged", tt.name, err)
			}
		})
	}
	if err := VerifyResult(signedMessage(t, key).Fields(), nil); !errors.Is(err, ErrForged) {
		t.Errorf("VerifyResult without a signature = %v, want ErrForged", err)
	}
}

func TestResultEncodingGolden(t *testing.T) {
	f := ResultFields{AgentID: "a1", CommandID: 2, ActionID: 3, Status: CmdFailed, Code: CodeBadParameters, Error: "bad \"x\"",
		Results: []Result{{Success: true, Elements: json.RawMessage(` { "b" : [1, 2.0] , "a":null } `)}, {}}}
	s := &ResultSignature{Name: "n", ActionHash: "ab", Started: time.Unix(0, 5).In(time.FixedZone("y", -7200))}
	got, err := ResultEncoding(f, s)
	if err != nil {
		t.Fatal(err)
	}
	want := "mig-result-v1\n" + `{"actionhash":"ab","actionid":"3","agentid":"a1","code":"bad_parameters","commandid":"2",` +
		`"error":"bad \"x\"","finished":"","name":"n","results":[` +
		`{"elements":{"b":[1,2.0],"a":null},"errors":[],"foundanything":false,"statistics":null,"success":true},` +
		`{"elements":null,"errors":[],"foundanything":false,"statistics":null,"success":false}],` +
		`"started":"1970-01-01T00:00:00.000000005Z","status":"failed"}`
	if string(got) != want {
		t.Errorf("ResultEncoding =\n%s\nwant\n%s", got, want)
	}
}

func TestResultSignatureCheck(t *testing.T) {
	key := testKey(t)
	good := *signedMessage(t, key).Signature
	tests := []struct {
		name   string
		change func(s *ResultSignature)
		want   string
	}{
		{"key", func(s *ResultSignature) { s.Key = s.Key[:31] }, "key is 31 bytes"},
		{"sig", func(s *ResultSignature) { s.Sig = nil }, "signature is 0 bytes"},
		{"hash upper", func(s *ResultSignature) { s.ActionHash = strings.ToUpper(s.ActionHash) }, "lower-case hex"},
		{"hash short", func(s *ResultSignature) { s.ActionHash = "abcd" }, "lower-case hex"},
		{"name", func(s *ResultSignature) { s.Name = "\xff" }, "not UTF-8"},
	}
	for _, tt := range tests {
		s := good
		tt.change(&s)
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %v, want an error with %q", tt.name, err, tt.want)
		}
		if tt.name == "name" {
			continue // JSON cannot carry invalid UTF-8
		}
		b, _ := json.Marshal(s)
		if _, err := DecodeResultSignature(b); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: DecodeResultSignature = %v, want an error with %q", tt.name, err, tt.want)
		}
		m := signedMessage(t, key)
		m.Signature = &s
		data, _ := json.Marshal(m)
		if _, err := DecodeResult(data); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: DecodeResult = %v, want ErrMessage", tt.name, err)
		}
	}
}

// BenchmarkSignVerifyResult measures what result signatures cost per
// result: the agent's SignResult plus the client's VerifyResult, for a
// small result (two operations, a few hundred bytes) and one with 1 MiB of
// elements (10,000 file matches).
func BenchmarkSignVerifyResult(b *testing.B) {
	key := testKey(b)
	small := signedMessage(b, key)
	var el bytes.Buffer
	el.WriteString("[")
	for i := 0; el.Len() < 1<<20; i++ {
		if i > 0 {
			el.WriteString(",")
		}
		fmt.Fprintf(&el, `{"file":"/var/lib/app/data/%06d.conf","fileinfo":{"size":%d,"mode":"-rw-r--r--"}}`, i, i*7)
	}
	el.WriteString("]")
	large := *small
	large.Results = []Result{{FoundAnything: true, Success: true, Elements: el.Bytes()}}
	for _, m := range []struct {
		name string
		m    *ResultMessage
	}{{"small", small}, {"1MiB", &large}} {
		b.Run(m.name, func(b *testing.B) {
			f := m.m.Fields()
			s := ResultSignature{Name: "web01", ActionHash: small.Signature.ActionHash, Started: m.m.Started, Finished: m.m.Finished}
			b.ReportAllocs()
			for b.Loop() {
				sig, err := SignResult(key, f, s)
				if err != nil {
					b.Fatal(err)
				}
				if err := VerifyResult(f, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzVerifyResult feeds result messages as they come off the relay (or
// out of a store) to DecodeResult and VerifyResult: neither may panic, a
// result that verifies still verifies after a JSON round trip, and one
// whose first result's found flag is flipped never verifies.
func FuzzVerifyResult(f *testing.F) {
	key := testKey(f)
	m := signedMessage(f, key)
	good, _ := json.Marshal(m)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte("passwd"), []byte("shadow"), 1))
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"success","signature":{"key":"","sig":""}}`))
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"success","results":[{"elements":[[[[` + "\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeResult(data)
		if err != nil {
			return
		}
		fields := m.Fields()
		if _, err := ResultEncoding(fields, &ResultSignature{}); err != nil && m.Signature == nil {
			return
		}
		if err := VerifyResult(fields, m.Signature); err != nil {
			if !errors.Is(err, ErrForged) {
				t.Fatalf("VerifyResult error does not wrap ErrForged: %v", err)
			}
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("a verified result does not encode: %v", err)
		}
		m2, err := DecodeResult(again)
		if err != nil {
			t.Fatalf("a verified result does not decode again: %v", err)
		}
		if err := VerifyResult(m2.Fields(), m2.Signature); err != nil {
			t.Fatalf("a verified result no longer verifies after a JSON round trip: %v", err)
		}
		if len(m2.Results) > 0 {
			m2.Results[0].FoundAnything = !m2.Results[0].FoundAnything
			if err := VerifyResult(m2.Fields(), m2.Signature); err == nil {
				t.Fatalf("a result with its found flag flipped still verifies")
			}
		}
	})
}

// FuzzNormalJSON checks the form results' JSON is signed in: for any valid
// JSON, it is valid JSON of the same value, written once it does not
// change, and encoding/json writing the value again (compacted, HTML
// escaped, as relay, store and API do) does not change it.
func FuzzNormalJSON(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.50e3, "x<y>&\u2028"], "A": null}`, `"\ud800"`, "\"\xff\ufffd\"", `[{"k":"\"\\\/"}]`, ` true `, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bytes.Buffer
		if err := normalJSON(&b, data); err != nil {
			if json.Valid(data) {
				t.Fatalf("normalJSON refuses valid JSON %q: %v", data, err)
			}
			return
		}
		if len(bytes.Trim(data, " \t\r\n")) == 0 {
			return
		}
		got := b.Bytes()
		var v1, v2 any
		if err := json.Unmarshal(got, &v2); err != nil {
			t.Fatalf("normalJSON(%q) = %q, not valid JSON: %v", data, got, err)
		}
		_ = json.Unmarshal(data, &v1)
		if !reflect.DeepEqual(v1, v2) {
			t.Fatalf("normalJSON(%q) = %q, another value", data, got)
		}
		var again bytes.Buffer
		if err := normalJSON(&again, got); err != nil || !bytes.Equal(again.Bytes(), got) {
			t.Fatalf("normalJSON is not idempotent on %q: %q, %v", got, again.Bytes(), err)
		}
		re, err := json.Marshal(json.RawMessage(data))
		if err != nil {
			t.Fatalf("json.Marshal of valid JSON: %v", err)
		}
		var rb bytes.Buffer
		if err := normalJSON(&rb, re); err != nil || !bytes.Equal(rb.Bytes(), got) {
			t.Fatalf("normalJSON changes when encoding/json writes the value again: %q -> %q, %q", data, got, rb.Bytes())
		}
	})
}
