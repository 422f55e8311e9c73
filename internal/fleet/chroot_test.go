package fleet

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
)

func TestRootParams(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"paths moved", `{"searches":{"s":{"paths":["/etc","/"],"names":["^passwd$"]}}}`,
			`{"searches":{"s":{"names":["^passwd$"],"paths":["/r/etc","/r"]}}}`},
		{"no escape", `{"searches":{"s":{"paths":["/../../etc"]}}}`, `{"searches":{"s":{"paths":["/r/etc"]}}}`},
		{"keys in any case", `{"Searches":{"s":{"pAths":["/x"]}}}`, `{"Searches":{"s":{"pAths":["/r/x"]}}}`},
		{"relative left for the module", `{"searches":{"s":{"paths":["etc"]}}}`, `{"searches":{"s":{"paths":["etc"]}}}`},
		{"numbers kept", `{"searches":{"s":{"paths":["/x"],"options":{"maxdepth":12345678901234}}}}`,
			`{"searches":{"s":{"options":{"maxdepth":12345678901234},"paths":["/r/x"]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rootParams("/r", []byte(tt.in))
			if err != nil || string(got) != tt.want {
				t.Errorf("rootParams = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"searches":[]}`, `{"searches":{"s":1}}`, `{"Searches":{"s":1}}`, `{`} {
		if _, err := rootParams("/r", []byte(bad)); err == nil {
			t.Errorf("rootParams(%s) = nil error, want one", bad)
		}
	}
}

func TestUnrootResult(t *testing.T) {
	r := unrootResult("/r", action.Result{
		Elements: json.RawMessage(`{"s":[{"file":"/r/etc/passwd","fileinfo":{"size":3}}]}`),
		Errors:   []string{"open /r/root/x: permission denied"},
	})
	if got, want := string(r.Elements), `{"s":[{"file":"/etc/passwd","fileinfo":{"size":3}}]}`; got != want {
		t.Errorf("elements = %s, want %s", got, want)
	}
	if got, want := r.Errors[0], "open /root/x: permission denied"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func FuzzRootParams(f *testing.F) {
	f.Add([]byte(`{"searches":{"s":{"paths":["/etc"],"names":["^passwd$"]}}}`))
	f.Add([]byte(`{"searches":{"s":{"paths":["/../..","x",1]}}}`))
	f.Fuzz(func(t *testing.T, params []byte) {
		out, err := rootParams("/r", params)
		if err != nil {
			return
		}
		var v struct {
			Searches map[string]struct {
				Paths []any `json:"paths"`
			} `json:"searches"`
		}
		if json.Unmarshal(out, &v) != nil {
			return
		}
		for _, s := range v.Searches {
			for _, p := range s.Paths {
				if ps, ok := p.(string); ok && strings.HasPrefix(ps, "/") && ps != "/r" && !strings.HasPrefix(ps, "/r/") {
					t.Errorf("path %q escapes the root in %s", ps, out)
				}
			}
		}
	})
}

func TestAttributesVary(t *testing.T) {
	oses := map[string]int{}
	names := map[string]bool{}
	for i := range 100 {
		name, env, tags := Attributes("p", i)
		oses[env.OS]++
		if names[name] {
			t.Errorf("name %q repeats", name)
		}
		names[name] = true
		if tags["fleet"] != "p" || tags["operator"] == "" || env.Arch == "" || len(env.Addresses) != 1 {
			t.Errorf("agent %d: tags %v arch %q addresses %v", i, tags, env.Arch, env.Addresses)
		}
	}
	if oses["linux"] != 70 || oses["darwin"] != 20 || oses["windows"] != 10 {
		t.Errorf("os split %v, want linux 70, darwin 20, windows 10", oses)
	}
}
