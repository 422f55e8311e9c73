package scribe

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/module"
)

// TestPrivacyShadowLine is issue 12 defect 2: a filecontent object "^(.*)$"
// over a shadow file captures whole lines; the agent's limit
// (module.LimitContent, with the "value" field scribe declares) withholds
// them unless raw, and keeps a short captured value.
func TestPrivacyShadowLine(t *testing.T) {
	dir := t.TempDir()
	line := "root:$6$Jh7Qx2Lk9PzW1sVb$K0XgkqU4yT5h0vA9cR2mP6wE3nL8dF1sJ7bY4tZ2xC5vQ9uH0iO3pK6aM8rS1eG4jW7lN2yB5oT9fD3hX6cV:19700:0:99999:7:::"
	if err := os.WriteFile(filepath.Join(dir, "shadow"), []byte(line+"\nVERSION=1.2.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `{"objects": [
	  {"object": "all", "filecontent": {"path": ` + jsonQuote(dir) + `, "file": "^shadow$", "expression": "^(.*)$"}}],
	  "tests": [{"test": "all", "object": "all"}]}`
	params, _ := json.Marshal(map[string]any{"scribedoc": json.RawMessage(doc)})
	for _, raw := range []bool{false, true} {
		r, err := ParseParameters(params)
		if err != nil {
			t.Fatal(err)
		}
		res := r.Run(t.Context(), module.Env{})
		if !res.Success || !strings.Contains(string(res.Elements), "$6$") {
			t.Fatalf("the module itself should capture the line (the agent limits it): %v %s", res.Errors, res.Elements)
		}
		n := module.LimitContent(&res, Name, raw)
		var el Elements
		if err := json.Unmarshal(res.Elements, &el); err != nil {
			t.Fatal(err)
		}
		var values []string
		for _, tr := range el.Results {
			for _, s := range tr.Results {
				values = append(values, s.Value)
			}
		}
		if raw {
			if n != 0 || !strings.Contains(strings.Join(values, "\n"), line) {
				t.Errorf("raw: %d withheld, values %q, want the whole line", n, values)
			}
			continue
		}
		if n != 1 || strings.Contains(string(res.Elements), "$6$") {
			t.Errorf("default: %d withheld, elements %s; want the shadow line withheld", n, res.Elements)
		}
		if !strings.Contains(strings.Join(values, "\n"), "VERSION=1.2.3") || !strings.Contains(strings.Join(values, "\n"), module.Withheld(len(line))) {
			t.Errorf("default: values %q, want VERSION=1.2.3 kept and the shadow line withheld", values)
		}
		if !strings.Contains(strings.Join(res.Errors, "\n"), "raw_scribe") {
			t.Errorf("default: errors %q lack a note naming raw_scribe", res.Errors)
		}
	}
}

func jsonQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
