package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedScribePolicy is the libnss3 policy of SEED-COMMANDS.md, as written.
const seedScribePolicy = `{
  "objects": [
    { "object": "libnss3-package", "package": { "name": "libnss3:amd64" } }
  ],
  "tests": [
    {
      "test": "libnss3 test",
      "object": "libnss3-package",
      "evr": { "operation": "<", "value": "2:3.19.2" }
    }
  ]
}`

// scribeTestResult is the part of a scribe test result the tests read.
type scribeTestResult struct {
	TestID       string `json:"testid"`
	MasterResult bool   `json:"masterresult"`
	Error        string `json:"error"`
	Skipped      string `json:"skipped"`
	Results      []struct {
		Result     bool   `json:"result"`
		Identifier string `json:"identifier"`
		Value      string `json:"value"`
	} `json:"results"`
}

// scribeAgent starts a platform without its built-in agent and one real
// mig-agent process named scribe-e2e (modules in child processes of it),
// and returns the environment for mig.
func scribeAgent(t *testing.T) []string {
	t.Helper()
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	srv := start(t, env, bins.server, "-dev", "-no-agent", "-api", apiAddr, "-relay", relayAddr)
	waitFor(t, 30*time.Second, "mig-server", func() bool { return strings.Contains(srv.output(), "API:") })
	dir := filepath.Join(home, ".mig", "dev")
	cfg := writeAgentConfigWith(t, dir, "https://"+apiAddr+"/api/v1", func(cfg map[string]any) { cfg["name"] = "scribe-e2e" })
	start(t, nil, bins.agent, "-c", cfg)
	waitFor(t, 30*time.Second, "the agent to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Contains(out, `"online"`) && strings.Contains(out, "scribe-e2e")
	})
	return env
}

// jsonResults reads the scribe test results of "mig scribe -render json"
// output: one line per command, its elements holding the results.
func jsonResults(t *testing.T, out string) (agents []string, results []scribeTestResult) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Agent    string `json:"agent"`
			Module   string `json:"module"`
			Status   string `json:"status"`
			Elements struct {
				Results []scribeTestResult `json:"results"`
			} `json:"elements"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		if l.Module != "scribe" || l.Status != "success" {
			t.Fatalf("output line %q: want a successful scribe result", line)
		}
		agents = append(agents, l.Agent)
		results = append(results, l.Elements.Results...)
	}
	return agents, results
}

// dpkgOracle says, with dpkg itself, whether the installed libnss3:amd64
// is older than 2:3.19.2, and returns its version ("" when it is not
// installed).
func dpkgOracle(t *testing.T) (version string, older bool) {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libnss3:amd64").Output()
	if err != nil || len(out) == 0 {
		return "", false
	}
	version = string(out)
	err = exec.Command("dpkg", "--compare-versions", version, "lt", "2:3.19.2").Run()
	return version, err == nil
}

// TestScribeThroughAgent sends scribe policies through the whole platform
// (mig, mig-server, the relay, a real mig-agent process and its module
// child process) and checks the answers against dpkg and against files
// written for the test.
func TestScribeThroughAgent(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg on this machine: the seed policy needs a Debian package database")
	}
	env := scribeAgent(t)
	work, err := os.MkdirTemp("/tmp", "mig-e2e-scribe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("seed libnss3 policy", func(t *testing.T) {
		seed := write("seed.json", seedScribePolicy)
		version, older := dpkgOracle(t)
		out, errOut, code := run(t, env, "scribe", "-path", seed, "-show", "all", "-render", "json")
		if code != 0 {
			t.Fatalf("mig scribe: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "will be targeted") {
			t.Errorf("no target preview on stderr:\n%s", errOut)
		}
		agents, res := jsonResults(t, out)
		if !slices.Equal(agents, []string{"scribe-e2e"}) || len(res) != 1 {
			t.Fatalf("answers from %q with %d results, want one from scribe-e2e\n%s", agents, len(res), out)
		}
		r := res[0]
		if r.TestID != "libnss3 test" || r.Error != "" || r.MasterResult != older {
			t.Errorf("result %+v; dpkg says libnss3:amd64 %q older than 2:3.19.2 is %t", r, version, older)
		}
		if version == "" {
			if len(r.Results) != 0 {
				t.Errorf("libnss3:amd64 is not installed, sub-results %+v", r.Results)
			}
		} else if len(r.Results) != 1 || r.Results[0].Identifier != "libnss3:amd64" || r.Results[0].Value != version || r.Results[0].Result != older {
			t.Errorf("sub-results %+v, want libnss3:amd64 %s %t", r.Results, version, older)
		}

		// The same policy with -t local, in mig itself, gives the same answer.
		lout, lerr, lcode := run(t, env, "scribe", "-path", seed, "-t", "local", "-show", "all", "-render", "json")
		if lcode != 0 {
			t.Fatalf("mig scribe -t local: exit %d\n%s\n%s", lcode, lout, lerr)
		}
		if strings.Contains(lerr, "will be targeted") {
			t.Errorf("-t local went through a server:\n%s", lerr)
		}
		_, local := jsonResults(t, lout)
		if len(local) != 1 || local[0].MasterResult != r.MasterResult || len(local[0].Results) != len(r.Results) {
			t.Errorf("-t local %+v differs from the agent's %+v", local, r)
		}
	})

	// A compliance policy over files written for the test: every object
	// type, every test type, if, expectedresult, concat, an import chain.
	write("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12.4\"\nVERSION_CODENAME=bookworm\n")
	write("ssh/sshd_config", "Include "+filepath.Join(work, "ssh", "conf.d")+"\nPermitRootLogin no\n")
	write("ssh/conf.d/a.conf", "PermitRootLogin yes\n")
	write("boot/vmlinuz-6.1.0-18-amd64", "")
	policy := write("compliance.json", `{
  "variables": [{"key": "work", "value": "`+work+`"}],
  "objects": [
    {"object": "release", "filecontent": {"path": "${work}/etc", "file": "^os-release$", "expression": "^VERSION_CODENAME=(\\S+)"}},
    {"object": "version", "filecontent": {"path": "${work}/etc", "file": "^os-release$", "expression": "^VERSION_ID=\"(\\d+)\\.(\\d+)\"", "concat": "."}},
    {"object": "sshd", "filecontent": {"path": "${work}/ssh", "file": "^sshd_config$", "expression": "^Include\\s+(\\S+)", "import-chain": ["sshd-included"]}},
    {"object": "sshd-included", "filecontent": {"path": "${chain_root}", "file": "\\.conf$", "expression": "^PermitRootLogin\\s+(\\S+)"}},
    {"object": "kernels", "filename": {"path": "${work}/boot", "file": "^vmlinuz-(.+)$"}},
    {"object": "dpkg", "package": {"collectmatch": "^dpkg$", "type": "dpkg"}},
    {"object": "policy", "raw": {"identifiers": [{"identifier": "policy-version", "value": "2.0-1"}]}}
  ],
  "tests": [
    {"test": "bookworm", "object": "release", "exactmatch": {"value": "bookworm"},
     "description": "the release", "aliases": ["CIS-1.1"], "tags": [{"key": "severity", "value": "info"}]},
    {"test": "jammy", "object": "release", "exactmatch": {"value": "jammy"}},
    {"test": "version 12.4", "object": "version", "evr": {"operation": "=", "value": "12.4"}},
    {"test": "root login via include", "object": "sshd", "regexp": {"value": "^yes$"}, "if": ["bookworm"]},
    {"test": "root login on jammy", "object": "sshd", "regexp": {"value": "^yes$"}, "if": ["jammy"]},
    {"test": "no old kernel", "object": "kernels", "evr": {"operation": "<", "value": "6.1.0-13"}, "expectedresult": false},
    {"test": "dpkg installed", "object": "dpkg", "noop": {}},
    {"test": "policy version", "object": "policy", "evr": {"operation": ">=", "value": "1.9", "type": "rpm"}},
    {"test": "collect kernels", "object": "kernels"}
  ]
}`)
	wantTrue := []string{"bookworm", "version 12.4", "root login via include", "no old kernel", "dpkg installed", "policy version", "collect kernels"}

	t.Run("onlytrue json", func(t *testing.T) {
		out, errOut, code := run(t, env, "scribe", "-path", policy, "-onlytrue", "-render", "json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		_, res := jsonResults(t, out)
		var got []string
		for _, r := range res {
			if !r.MasterResult {
				t.Errorf("-onlytrue returned the false test %+v", r)
			}
			got = append(got, r.TestID)
		}
		if !slices.Equal(got, wantTrue) {
			t.Errorf("true tests %q, want %q", got, wantTrue)
		}
	})

	t.Run("line output", func(t *testing.T) {
		out, errOut, code := run(t, env, "scribe", "-path", policy)
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, w := range []string{
			"scribe-e2e [true] bookworm: " + filepath.Join(work, "etc/os-release") + " bookworm\n",
			"scribe-e2e [false] jammy\n",
			"scribe-e2e [true] version 12.4: " + filepath.Join(work, "etc/os-release") + " 12.4\n",
			"scribe-e2e [true] root login via include: " + filepath.Join(work, "ssh/conf.d/a.conf") + " yes\n",
			`scribe-e2e [false] root login on jammy: not run, test "jammy" is false` + "\n",
			"scribe-e2e [true] no old kernel\n",
			"scribe-e2e [true] policy version: policy-version 2.0-1\n",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q\nstdout:\n%s", w, out)
			}
		}
	})

	t.Run("human output", func(t *testing.T) {
		out, errOut, code := run(t, env, "scribe", "-path", policy, "-human", "-onlytrue")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, w := range []string{
			"scribe-e2e test bookworm: true\n",
			"scribe-e2e   description: the release\n",
			"scribe-e2e   aliases: CIS-1.1\n",
			"scribe-e2e   tags: severity=info\n",
			"scribe-e2e   [false] " + filepath.Join(work, "ssh/sshd_config") + " " + filepath.Join(work, "ssh/conf.d") + "\n",
			"scribe-e2e   [true] " + filepath.Join(work, "ssh/conf.d/a.conf") + " yes\n",
			"scribe-e2e   [true] " + filepath.Join(work, "boot/vmlinuz-6.1.0-18-amd64") + " 6.1.0-18-amd64\n",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q\nstdout:\n%s", w, out)
			}
		}
		if strings.Contains(out, "jammy") {
			t.Errorf("-onlytrue printed a false test:\n%s", out)
		}
	})

	t.Run("converted OVAL", func(t *testing.T) {
		// mig scribe convert, then the policy it wrote sent as it is. On
		// this machine (not Ubuntu 22.04) the release check is false and
		// the package tests that depend on it do not run.
		conv := filepath.Join(work, "jammy.json")
		oval := filepath.Join("..", "scribe", "testdata", "ubuntu-jammy-oval.xml")
		if out, errOut, code := run(t, env, "scribe", "convert", "-i", oval, "-o", conv); code != 0 {
			t.Fatalf("mig scribe convert: exit %d\n%s\n%s", code, out, errOut)
		}
		lsb, _ := os.ReadFile("/etc/lsb-release")
		if strings.Contains(string(lsb), "DISTRIB_CODENAME=jammy") {
			t.Skip("this machine is Ubuntu 22.04")
		}
		out, errOut, code := run(t, env, "scribe", "-path", conv, "-show", "all", "-render", "json")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		_, res := jsonResults(t, out)
		if len(res) != 5 {
			t.Fatalf("%d results, want 5 (one release check, four package tests)\n%s", len(res), out)
		}
		for _, r := range res {
			switch {
			case r.MasterResult || r.Error != "":
				t.Errorf("test %q: true or in error on a machine that is not jammy: %+v", r.TestID, r)
			case strings.HasPrefix(r.TestID, "USN-") && r.Skipped == "":
				t.Errorf("test %q ran although the release check is false: %+v", r.TestID, r)
			}
		}
	})

	t.Run("bad policies refused before sending", func(t *testing.T) {
		raw := `{"object":"o","raw":{"identifiers":[{"identifier":"a","value":"1"}]}}`
		for _, tt := range []struct {
			name, doc string
			want      []string
		}{
			{"unknown object type", `{"objects":[{"object":"reg","registry":{"key":"x"}}],"tests":[{"test":"t","object":"reg"}]}`,
				[]string{`object "reg"`, `"registry"`}},
			{"missing object", `{"objects":[` + raw + `],"tests":[{"test":"t1","object":"ghost","noop":{}}]}`,
				[]string{`test "t1"`, `"ghost"`}},
			{"if cycle", `{"objects":[` + raw + `],"tests":[{"test":"a","object":"o","if":["b"]},{"test":"b","object":"o","if":["a"]}]}`,
				[]string{"cycle", `test "`}},
			{"invalid regex", `{"objects":[` + raw + `],"tests":[{"test":"re","object":"o","regexp":{"value":"(["}}]}`,
				[]string{`test "re"`, `"(["`}},
			{"unknown operator", `{"objects":[` + raw + `],"tests":[{"test":"op","object":"o","evr":{"operation":"!=","value":"1"}}]}`,
				[]string{`test "op"`, `"!="`}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := write(strings.ReplaceAll(tt.name, " ", "-")+".json", tt.doc)
				out, errOut, code := run(t, env, "scribe", "-path", p)
				if code == 0 || strings.Contains(errOut, "will be targeted") || out != "" {
					t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
				}
				for _, w := range tt.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("stderr lacks %q:\n%s", w, errOut)
					}
				}
			})
		}
	})
}
