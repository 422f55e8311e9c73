package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPrivacyShadowLine runs the scribe policy of issue 12 defect 2 (a
// filecontent object "^(.*)$" over a shadow file) through the platform to
// two real mig-agent processes: one with the default one-signature ACL,
// which must not send the whole line, and one whose ACL has a
// "raw_scribe" entry of higher weight that the dev investigator reaches,
// which sends it. A short captured value (a version) passes both.
func TestPrivacyShadowLine(t *testing.T) {
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	srv := start(t, env, bins.server, "-dev", "-no-agent", "-api", apiAddr, "-relay", relayAddr)
	waitFor(t, 30*time.Second, "mig-server", func() bool { return strings.Contains(srv.output(), "API:") })
	dir := filepath.Join(home, ".mig", "dev")
	pub, err := os.ReadFile(filepath.Join(dir, "investigator.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprintOf(t, pub)
	api := "https://" + apiAddr + "/api/v1"
	start(t, nil, bins.agent, "-c", writeAgentConfigWith(t, dir, api, func(cfg map[string]any) { cfg["name"] = "priv-default" }))
	start(t, nil, bins.agent, "-c", writeAgentConfigWith(t, dir, api, func(cfg map[string]any) {
		cfg["name"] = "priv-raw"
		cfg["acldata"] = fmt.Sprintf(`{"default":{"minimumweight":1,"investigators":{"dev":{"fingerprint":%q,"weight":1}}},
			"raw_scribe":{"minimumweight":2,"investigators":{"dev":{"fingerprint":%q,"weight":2}}}}`, fp, fp)
	}))
	waitFor(t, 30*time.Second, "both agents to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Count(out, `"online"`) >= 2
	})

	atk := attack(t, "privacy", "scribe returns a shadow line with the default ACL")
	work := t.TempDir()
	shadowLine := "root:$6$Jh7Qx2Lk9PzW1sVb$K0XgkqU4yT5h0vA9cR2mP6wE3nL8dF1sJ7bY4tZ2xC5vQ9uH0iO3pK6aM8rS1eG4jW7lN2yB5oT9fD3hX6cV:19700:0:99999:7:::"
	if err := os.WriteFile(filepath.Join(work, "shadow"), []byte(shadowLine+"\nVERSION=1.2.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(work, "policy.json")
	if err := os.WriteFile(policy, []byte(`{
  "objects": [
    {"object": "lines", "filecontent": {"path": "`+work+`", "file": "^shadow$", "expression": "^(root.*)$"}},
    {"object": "version", "filecontent": {"path": "`+work+`", "file": "^shadow$", "expression": "^VERSION=(\\S+)$"}}
  ],
  "tests": [
    {"test": "lines", "object": "lines"},
    {"test": "version", "object": "version"}
  ]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, env, "scribe", "-path", policy, "-show", "all", "-render", "json")
	if code != 0 {
		t.Fatalf("mig scribe: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	agents, _ := jsonResults(t, out)
	slices.Sort(agents)
	if !slices.Equal(agents, []string{"priv-default", "priv-raw"}) {
		t.Fatalf("answers from %q, want priv-default and priv-raw\n%s", agents, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		_, res := jsonResults(t, line)
		var values = map[string]string{}
		for _, r := range res {
			for _, s := range r.Results {
				values[r.TestID] = s.Value
			}
		}
		if values["version"] != "1.2.3" {
			t.Errorf("the short captured value is %q, want 1.2.3\n%s", values["version"], line)
		}
		switch {
		case strings.Contains(line, `"priv-default"`):
			if strings.Contains(line, "$6$") || values["lines"] != fmt.Sprintf("[withheld: %d bytes]", len(shadowLine)) {
				atk.executed("the default ACL let the shadow line out (value %q)\n%s", values["lines"], line)
			}
			if !strings.Contains(line, "raw_scribe") {
				t.Errorf("no privacy note naming raw_scribe in the result\n%s", line)
			}
		case strings.Contains(line, `"priv-raw"`):
			if values["lines"] != shadowLine {
				t.Errorf("the raw_scribe entry is satisfied but the value is %q, want the whole line\n%s", values["lines"], line)
			}
		}
	}
	atk.refused()
}
