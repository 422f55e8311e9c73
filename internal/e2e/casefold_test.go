package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/api"
	_ "github.com/migplatform/mig/internal/module/file" // the API checks file parameters
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/sign"
)

// TestCaseFoldedParameterKeysRefused is issue 12's first defect: signed
// parameters holding both "paths" and "Paths" (or "pathſ", which
// encoding/json also reads as "paths") let whoever carries the action choose,
// by key order, which one the module sees. The signing tool refuses to sign
// them, the API refuses them, and a compromised server that stores and
// publishes them anyway under a signature made over the old encoding (sorted
// keys, both kept) is refused by the real agent, which never searches the
// path that the carrier chose.
func TestCaseFoldedParameterKeysRefused(t *testing.T) {
	signedDir := t.TempDir() // the path the investigator meant to search
	variants := []struct{ name, key string }{{"upper case", "Paths"}, {"long s", "pathſ"}}

	t.Run("mig refuses to sign", func(t *testing.T) {
		env, _, _ := devPlatform(t, "-no-agent")
		for _, v := range variants {
			atk := attack(t, "forged-encoding", "mig signs case-folded keys ("+v.name+")")
			f := filepath.Join(t.TempDir(), "a.json")
			params := `{"searches":{"s1":{"paths":[` + jsonString(signedDir) + `],"` + v.key + `":["/etc"],"names":["^hostname$"]}}}`
			must(t, os.WriteFile(f, []byte(`{"name":"casefold","target":"status='online'","operations":[{"module":"file","parameters":`+params+`}]}`), 0o600))
			out := filepath.Join(t.TempDir(), "signed.json")
			_, errOut, code := run(t, env, "action", "-i", f, "-s", "-o", out)
			if code == 0 || !strings.Contains(errOut, `"`+v.key+`"`) {
				t.Errorf("%s: mig action -s exit %d, want a refusal naming %q\nstderr:\n%s", v.name, code, v.key, errOut)
			}
			if _, err := os.Stat(out); err == nil {
				atk.executed("%s: a signed action was written", v.name)
			}
			atk.refused()
		}
	})

	dir := t.TempDir()
	ts := startTestServer(t, dir)
	srv, cfg, caFile := ts.Server, ts.cfg, ts.caFile

	alice := newInvestigator(t, "Alice")
	agentCfg, _ := json.Marshal(map[string]any{
		"server": srv.APIURL(), "ca": caFile, "enrollmenttoken": cfg.EnrollmentTokens[0],
		"statedir": filepath.Join(dir, "agent"), "keyringdata": alice.pub,
		"acldata":   `{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": "` + alice.fp + `", "weight": 1}}}}`,
		"heartbeat": "2s", "moduleexe": bins.agent, "moduletimeout": "5s", "name": "casefold-agent",
	})
	cfgFile := filepath.Join(dir, "agent.json")
	must(t, os.WriteFile(cfgFile, agentCfg, 0o600))
	agentID := ts.startAgent(t, cfgFile)

	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			atk := attack(t, "forged-encoding", "carrier reorders case-folded keys ("+v.name+")")
			// What the carrier sends: the signed path first, its own last,
			// so that a last-wins decoder would search /etc.
			sent := `{"searches":{"s1":{"paths":[` + jsonString(signedDir) + `],"` + v.key + `":["/etc"],"names":["^hostname$"]}}}`
			a := forgeCaseFolded(t, alice, sent, signedDir, v.key)

			if _, err := api.CheckAction(a); err == nil || !strings.Contains(err.Error(), "equal when case is ignored") {
				t.Errorf("the API's check = %v, want a case-folding refusal", err)
			}
			if err := sign.SignAction(a.Clone(), alice.signer); err == nil {
				t.Error("sign.SignAction signed parameters with case-folded keys")
			}

			cmd := inject(t, srv, a, agentID)
			if cmd.Status != action.CmdFailed || cmd.Code != action.CodeBadEncoding || !strings.Contains(cmd.Error, v.key) {
				t.Fatalf("command status %q code %q (%s), want failed %q naming %q", cmd.Status, cmd.Code, cmd.Error, action.CodeBadEncoding, v.key)
			}
			if len(cmd.Results) != 0 {
				atk.executed("the agent ran the module: %+v", cmd.Results)
			}
			atk.refused()
		})
	}
}

// forgeCaseFolded returns a file action with parameters sent, signed by inv
// over the encoding that the signed encoding produced before case-folded keys
// were refused: the canonical parameters with both keys kept, sorted by byte
// order. That is what an investigator's older client signed for such a file.
func forgeCaseFolded(t *testing.T, inv investigator, sent, signedDir, key string) *action.Action {
	t.Helper()
	id, _ := scheduler.NewID()
	now := time.Now()
	a := &action.Action{ID: id, Name: "casefold", Target: "status='online'",
		ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(10 * time.Minute),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(
			`{"searches":{"s1":{"names":["^hostname$"],"paths":[` + jsonString(signedDir) + `]}}}`)}}}
	enc, err := a.Encoding()
	must(t, err)
	good := `"names":["^hostname$"],"paths":[` + jsonString(signedDir) + `]`
	members := []string{`"names":["^hostname$"]`, `"paths":[` + jsonString(signedDir) + `]`, `"` + key + `":["/etc"]`}
	if key < "names" {
		members = append(members[2:], members[:2]...)
	}
	old := bytes.Replace(enc, []byte(good), []byte(strings.Join(members, ",")), 1)
	if bytes.Equal(old, enc) {
		t.Fatal("the parameters are not in the encoding")
	}
	sig, err := inv.signer.Sign(old)
	must(t, err)
	a.Operations[0].Parameters = json.RawMessage(sent)
	a.PGPSignatures = []string{sig}
	return a
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
