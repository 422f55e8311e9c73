package module_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

func TestFitResult(t *testing.T) {
	elems := make([]string, 100)
	for i := range elems {
		elems[i] = fmt.Sprintf("%d-%s", i, strings.Repeat("x", 1000))
	}
	arr, _ := json.Marshal(elems)
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("error %d %s", i, strings.Repeat("e", 2000))
	}
	const limit = 20 << 10
	tests := []struct {
		name      string
		res       action.Result
		wantKept  int // elements kept; -1: the result is unchanged
		wantOK    bool
		wantStats bool
	}{
		{"small", action.Result{Success: true, Elements: json.RawMessage(`[1,2]`), Statistics: json.RawMessage(`{"n":2}`)}, -1, true, true},
		{"array cut", action.Result{Success: true, FoundAnything: true, Elements: arr, Statistics: json.RawMessage(`{"n":100}`)}, 12, true, true},
		{"object dropped", action.Result{Success: true, Elements: mustMarshal(map[string]string{"blob": strings.Repeat("b", limit)})}, 0, true, false},
		{"errors cut, note kept", action.Result{Success: true, Elements: arr, Errors: many}, 0, true, false},
		{"statistics cannot be cut", action.Result{Success: true, Statistics: mustMarshal(map[string]string{"s": strings.Repeat("s", limit)})}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := module.FitResult(tt.res, limit)
			b, err := json.Marshal(got)
			if err != nil || len(b) > limit {
				t.Fatalf("FitResult encodes to %d bytes (%v), want at most %d", len(b), err, limit)
			}
			if got.Success != tt.wantOK || got.FoundAnything != tt.res.FoundAnything {
				t.Errorf("success %v found %v, want %v %v", got.Success, got.FoundAnything, tt.wantOK, tt.res.FoundAnything)
			}
			if (len(got.Statistics) > 0) != tt.wantStats {
				t.Errorf("statistics = %.100s, want kept: %v", got.Statistics, tt.wantStats)
			}
			if tt.wantKept < 0 {
				if string(b) != string(mustMarshal(tt.res)) {
					t.Errorf("FitResult changed a result that fits: %.200s", b)
				}
				return
			}
			if len(got.Errors) == 0 || !strings.HasPrefix(got.Errors[0], action.CodeTooLarge+": ") {
				t.Fatalf("errors = %.300q, want a %s note first", got.Errors, action.CodeTooLarge)
			}
			if tt.wantKept > 0 {
				var kept []string
				if err := json.Unmarshal(got.Elements, &kept); err != nil || len(kept) != tt.wantKept || kept[0] != elems[0] {
					t.Errorf("kept %d elements (%v), want the first %d", len(kept), err, tt.wantKept)
				}
				if want := fmt.Sprintf("kept %d of 100 elements", tt.wantKept); !strings.Contains(got.Errors[0], want) {
					t.Errorf("note %q, want it to say %q", got.Errors[0], want)
				}
			} else if len(got.Elements) != 0 {
				t.Errorf("elements = %.100s, want none", got.Elements)
			}
		})
	}
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzFitResult cuts arbitrary module results (elements as the child sent
// them, after strict decoding accepted them as JSON) to a small limit: the
// cut result always encodes within the limit, keeps FoundAnything, and says
// it was cut.
func FuzzFitResult(f *testing.F) {
	f.Add([]byte(`["a","b","c"]`), "error", 3, 200)
	f.Add([]byte(`{"blob":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`), "", 0, 64)
	f.Add([]byte(`[[1,2],[3,[4,5]],{"k":"v"}]`), strings.Repeat("e", 300), 20, 500)
	f.Add([]byte(`"just a string"`), "\x00\xff", 1, 1)
	f.Fuzz(func(t *testing.T, elems []byte, errText string, nErrors, limit int) {
		if !json.Valid(elems) || nErrors < 0 || nErrors > 64 || limit < 0 || limit > 1<<20 {
			return
		}
		res := action.Result{Success: true, FoundAnything: len(elems)%2 == 0, Elements: elems,
			Statistics: json.RawMessage(`{"n":1}`)}
		for i := range nErrors {
			res.Errors = append(res.Errors, fmt.Sprintf("%d %s", i, errText))
		}
		before := string(mustMarshal(res))
		got := module.FitResult(res, limit)
		if string(mustMarshal(res)) != before {
			t.Fatalf("FitResult changed its argument")
		}
		b := mustMarshal(got)
		if len(before) <= limit {
			if string(b) != before {
				t.Fatalf("a result that fits was changed: %s", b)
			}
			return
		}
		if got.FoundAnything != res.FoundAnything {
			t.Errorf("FoundAnything changed")
		}
		if len(b) > limit {
			// Only the fallback may be over a limit too small for it.
			fallback := action.Result{FoundAnything: res.FoundAnything, Errors: got.Errors}
			if got.Success || len(got.Elements) != 0 || string(mustMarshal(fallback)) != string(b) {
				t.Fatalf("cut result is %d bytes, over %d, and not the fallback: %.300s", len(b), limit, b)
			}
		}
		if len(got.Errors) == 0 || !strings.HasPrefix(got.Errors[0], action.CodeTooLarge+": ") {
			t.Fatalf("cut result errors %q, want a %s note first", got.Errors, action.CodeTooLarge)
		}
	})
}
