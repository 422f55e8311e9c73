package module_test

import (
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// TestLimitContentUndeclared bounds strings of a module that declares no
// content field (or an unknown module): long strings, keys and errors are
// withheld, short ones and numbers kept, and bad JSON dropped.
func TestLimitContentUndeclared(t *testing.T) {
	long := strings.Repeat("x", module.MaxResultString+1)
	r := action.Result{
		Elements:   []byte(`{"path":"/etc/passwd","n":12345678901234567890,"blob":"` + long + `","` + long + `":1}`),
		Statistics: []byte(`{"oops"`),
		Errors:     []string{"short", long},
	}
	if n := module.LimitContent(&r, "no-such-module", false); n != 3 {
		t.Errorf("withheld %d, want 3 (a value, a key, an error)", n)
	}
	el := string(r.Elements)
	if strings.Contains(el, long) || !strings.Contains(el, `"/etc/passwd"`) || !strings.Contains(el, "12345678901234567890") {
		t.Errorf("elements %s", el)
	}
	if r.Statistics != nil || r.Errors[0] != "short" || r.Errors[1] != module.Withheld(len(long)) {
		t.Errorf("statistics %s errors %q", r.Statistics, r.Errors)
	}
	raw := action.Result{Elements: []byte(`{"blob":"` + long + `"}`)}
	if n := module.LimitContent(&raw, "scribe", true); n != 0 || !strings.Contains(string(raw.Elements), long) {
		t.Errorf("raw: withheld %d", n)
	}
}
