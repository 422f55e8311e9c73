package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func sample() *Action {
	from := time.Date(2026, 11, 21, 10, 0, 0, 123, time.UTC)
	return &Action{
		ID:          42,
		Name:        "find passwd",
		Target:      "status='online'",
		ValidFrom:   from,
		ExpireAfter: from.Add(5 * time.Minute),
		Operations: []Operation{{Module: "file",
			Parameters: json.RawMessage(`{"searches": {"s1": {"paths": ["/etc"], "names": ["^passwd$"]}}}`)}},
	}
}

func TestEncodingDeterministic(t *testing.T) {
	a := sample()
	e1, err := a.Encoding()
	if err != nil {
		t.Fatal(err)
	}
	// The same action written with other whitespace, key order and time zone
	// encodes the same.
	b := sample()
	b.Operations[0].Parameters = json.RawMessage("{\"searches\":{\"s1\":{\n\"names\":[\"^passwd$\"],  \"paths\":[\"/etc\"]}}}")
	b.ValidFrom = b.ValidFrom.In(time.FixedZone("X", 3600))
	e2, err := b.Encoding()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1, e2) {
		t.Fatalf("encodings differ:\n%s\n%s", e1, e2)
	}
	if !bytes.HasPrefix(e1, []byte(EncodingPrefix)) {
		t.Fatalf("encoding lacks the prefix: %q", e1)
	}
}

func TestEncodingCoversEveryField(t *testing.T) {
	base, err := sample().Encoding()
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]func(a *Action){
		"id":          func(a *Action) { a.ID++ },
		"name":        func(a *Action) { a.Name += "x" },
		"target":      func(a *Action) { a.Target = "status='idle'" },
		"validfrom":   func(a *Action) { a.ValidFrom = a.ValidFrom.Add(time.Nanosecond) },
		"expireafter": func(a *Action) { a.ExpireAfter = a.ExpireAfter.Add(time.Second) },
		"module":      func(a *Action) { a.Operations[0].Module = "netstat" },
		"parameters":  func(a *Action) { a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/"]}}}`) },
		"operations":  func(a *Action) { a.Operations = append(a.Operations, a.Operations[0]) },
		"author":      func(a *Action) { a.Description.Author = "eve" },
		"threat":      func(a *Action) { a.Threat.Level = "high" },
	}
	for name, change := range changes {
		a := sample()
		change(a)
		got, err := a.Encoding()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bytes.Equal(got, base) {
			t.Errorf("changing %s does not change the encoding", name)
		}
	}
	// Platform fields and signatures are not covered.
	a := sample()
	a.Status, a.PGPSignatures, a.Counters.Sent = StatusCompleted, []string{"sig"}, 3
	got, _ := a.Encoding()
	if !bytes.Equal(got, base) {
		t.Errorf("platform fields change the encoding")
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: `{"b":1,"a":[true,null,"x"]}`, want: `{"a":[true,null,"x"],"b":1}`},
		{in: ` { "a" : 1.50 } `, want: `{"a":1.50}`},
		{in: `{"s":"\u00e9\n\u0001<>&"}`, want: "{\"s\":\"é\\n\\u0001<>&\"}"},
		{in: `{"a":1,"a":2}`, err: "duplicate object key"},
		{in: `{"a":1} {}`, err: "data after"},
		{in: `{"a":`, err: "bad JSON"},
		{in: strings.Repeat("[", 100) + strings.Repeat("]", 100), err: "nested deeper"},
		{in: "\"\xff\"", err: "UTF-8"},
	}
	for _, tc := range tests {
		got, err := Canonical([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Canonical(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonical(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Action)
		err    string
	}{
		{"ok", func(a *Action) {}, ""},
		{"no name", func(a *Action) { a.Name = " " }, "name is empty"},
		{"no target", func(a *Action) { a.Target = "" }, "target is empty"},
		{"no validfrom", func(a *Action) { a.ValidFrom = time.Time{} }, "validfrom"},
		{"window", func(a *Action) { a.ExpireAfter = a.ValidFrom }, "is not after"},
		{"no ops", func(a *Action) { a.Operations = nil }, "no operations"},
		{"bad module", func(a *Action) { a.Operations[0].Module = "../x" }, `"../x"`},
		{"params not object", func(a *Action) { a.Operations[0].Parameters = json.RawMessage(`[1]`) }, "JSON object"},
		{"dup keys", func(a *Action) { a.Operations[0].Parameters = json.RawMessage(`{"a":1,"a":2}`) }, "duplicate"},
		{"syntax", func(a *Action) { a.SyntaxVersion = 1 }, "syntaxversion 1"},
		{"compressed", func(a *Action) { a.Operations[0].IsCompressed = true }, "compressed parameters"},
	}
	for _, tc := range tests {
		a := sample()
		tc.change(a)
		err := a.Validate()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want ErrInvalid containing %q", tc.name, err, tc.err)
		}
	}
}

func TestParseMIGActionFile(t *testing.T) {
	// An action file as MIG investigators wrote them, without signatures.
	src := `{
  "name": "Shellshock IOCs (nginx and more)",
  "target": "environment->>'os' IN ('linux','darwin') AND mode='daemon'",
  "description": {"author": "Julien", "email": "j@example.net", "revision": 2},
  "threat": {"family": "malware", "level": "high"},
  "validfrom": "2014-09-25T09:00:00.000Z",
  "expireafter": "2014-09-25T10:00:00.000Z",
  "operations": [{"module": "file", "parameters": {"searches": {"iocs": {"paths": ["/usr/bin"], "sha256": ["` + strings.Repeat("a", 64) + `"]}}}}],
  "syntaxversion": 2
}`
	a, err := ParseAction([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAction([]byte(`{"name":"x","unknownfield":1}`)); err == nil || !strings.Contains(err.Error(), "unknownfield") {
		t.Errorf("unknown field not refused: %v", err)
	}
}

func TestDecodeMessages(t *testing.T) {
	if _, err := DecodeResult([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"sent"}`)); err == nil {
		t.Error("a non-terminal result status was accepted")
	}
	if _, err := DecodeCommand([]byte(`{"v":2,"command":{"id":1,"agentid":"a"}}`)); err == nil || !strings.Contains(err.Error(), "protocol version 2") {
		t.Errorf("wrong version: %v", err)
	}
	big := make([]byte, MaxMessageSize+1)
	if _, err := DecodeHeartbeat(big); !errors.Is(err, ErrMessage) {
		t.Errorf("oversized message: %v", err)
	}
	m, err := Marshal(ResultMessage{V: ProtocolVersion, AgentID: "a", CommandID: 7, Status: CmdSuccess})
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeResult(m)
	if err != nil || r.CommandID != 7 {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
}

func FuzzEncoding(f *testing.F) {
	f.Add([]byte(`{"name":"x","target":"status='online'","validfrom":"2026-01-01T00:00:00Z","expireafter":"2026-01-02T00:00:00Z","operations":[{"module":"file","parameters":{"a":[1,2,{"b":"c"}]}}]}`))
	f.Add([]byte(`{"operations":[{"module":"m","parameters":{"a":1,"a":2}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAction(data)
		if err != nil {
			return
		}
		_ = a.Validate()
		e1, err := a.Encoding()
		if err != nil {
			return
		}
		// Encoding is stable through a JSON round trip of the action.
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := ParseAction(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		e2, err := a2.Encoding()
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("encoding changed through a round trip: %v\n%s\n%s", err, e1, e2)
		}
	})
}

func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":[1,{"c":null}],"a":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Canonical(data)
		if err != nil {
			return
		}
		c2, err := Canonical(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form is not a fixed point: %v\n%s\n%s", err, c, c2)
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not valid JSON: %s", c)
		}
	})
}

func FuzzDecodeMessages(f *testing.F) {
	f.Add([]byte(`{"v":1,"command":{"id":1,"agentid":"a","action":{"name":"x"}}}`))
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"success","results":[{"foundanything":true}]}`))
	f.Add([]byte(`{"v":1,"hello":true,"agent":{"id":"a","environment":{"os":"linux"}}}`))
	f.Add([]byte(`{"v":1,"commandids":[1,2]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeCommand(data)
		_, _ = DecodeResult(data)
		_, _ = DecodeHeartbeat(data)
		_, _ = DecodeAck(data)
	})
}

func TestCanonicalRefusesCaseFoldedKeys(t *testing.T) {
	refused := []string{
		`{"paths":["/tmp"],"Paths":["/etc"]}`,
		`{"Paths":["/etc"],"paths":["/tmp"]}`,
		`{"paths":["/tmp"],"pathſ":["/etc"]}`,
		`{"pathſ":["/etc"],"PATHS":["/tmp"]}`,
		`{"key":1,"\u212aey":2}`,
		`{"searches":{"s1":{"paths":["/tmp"],"Paths":["/etc"]}}}`,
		`{"a":[{"b":{"x":1,"X":2}}]}`,
		`{"ǅ":1,"ǆ":2}`, // a title-case letter folds with its lower case
	}
	for _, in := range refused {
		_, err := Canonical([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "equal when case is ignored") {
			t.Errorf("Canonical(%s) = %v, want a case-folding error", in, err)
		}
	}
	kept := []string{`{"paths":1,"path":2}`, `{"ab":1,"ba":2}`, `{"s":1,"ss":2,"ß":3}`, `{"k":1,"kk":2}`}
	for _, in := range kept {
		if _, err := Canonical([]byte(in)); err != nil {
			t.Errorf("Canonical(%s) = %v, want nil", in, err)
		}
	}
}

func TestFoldKeyAgreesWithEqualFold(t *testing.T) {
	keys := []string{"", "a", "A", "k", "K", "\u212a", "s", "S", "ſ", "paths", "Paths", "pathſ", "PATHS", "ß", "ẞ",
		"ǅ", "ǆ", "Ǆ", "σ", "ς", "Σ", "µ", "μ", "Μ", "i", "I", "İ", "ı", "0", "_", "é", "É", "\ufffd"}
	for _, a := range keys {
		for _, b := range keys {
			if got, want := foldKey(a) == foldKey(b), strings.EqualFold(a, b); got != want {
				t.Errorf("foldKey(%q) == foldKey(%q) is %v, strings.EqualFold is %v", a, b, got, want)
			}
		}
	}
}

func FuzzFoldKey(f *testing.F) {
	f.Add("paths", "pathſ")
	f.Add("Key", "\u212aey")
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := foldKey(a) == foldKey(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("foldKey(%q) == foldKey(%q) is %v, strings.EqualFold is %v", a, b, got, want)
		}
	})
}
