package e2e

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
)

// apiURLOf returns the API URL that "mig-server -dev" printed.
func apiURLOf(t *testing.T, p *proc) string {
	t.Helper()
	m := regexp.MustCompile(`API:\s+(https://\S+)`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no API URL in the output of mig-server -dev:\n%s", p.output())
	}
	return m[1]
}

// summaryRE matches the summary line mig prints on stderr at the end.
var summaryRE = regexp.MustCompile(`(\d+) of (\d+) agents answered: (\d+) success, (\d+) failed, (\d+) timeout, (\d+) expired, (\d+) cancelled`)

// checkSummary checks that errOut ends with a summary whose counters add up
// and returns them as the action.Counters mig printed them from: Done
// answered of Sent targeted, then Success, Failed, TimeOut, Expired and
// Cancelled.
func checkSummary(t *testing.T, errOut string) action.Counters {
	t.Helper()
	m := summaryRE.FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no summary on stderr:\n%s", errOut)
	}
	var n action.Counters
	for i, f := range []*int{&n.Done, &n.Sent, &n.Success, &n.Failed, &n.TimeOut, &n.Expired, &n.Cancelled} {
		fmt.Sscan(m[i+1], f)
	}
	n.InFlight = n.Sent - n.Done
	if sum := n.Success + n.Failed + n.TimeOut + n.Expired + n.Cancelled; sum != n.Done || n.Done != n.Sent {
		t.Errorf("summary does not add up: %s", m[0])
	}
	return n
}

// TestSeedCommandLines runs, against "mig-server -dev", the seed command
// lines that TestDevQuickStart does not, exactly as SEED-COMMANDS.md writes
// them, and the two hand-written action files of SEED-COMMANDS.md through
// "mig action -i FILE", plus the global flags -show, -render, -e and target
// macros.
func TestSeedCommandLines(t *testing.T) {
	env, srv, dir := devPlatform(t)

	t.Run("seed2-md5-matchany", func(t *testing.T) {
		// Walking /usr, /bin, ... to depth 2 with five hashes: on a loaded
		// machine the 20 s expiry may cut it short (timeout), which is an
		// answer too; what matters is that the line runs as written.
		out, errOut, code := run(t, env, "file", "-e", "20s", "-path", "/usr", "-path", "/bin", "-path", "/sbin", "-path", "/tmp", "-path", "/opt",
			"-md5", "eefc66a1e978dc9d825f28702106d4d5", "-md5", "efa23860086c5d12d3e6b918073c717f", "-md5", "f3c5c20f5c45fc401484caf72753d778",
			"-md5", "fad8f37c9bd5420f49cfd5960a60fa24", "-md5", "fb3495715764cdaa547f2b040c0a9b1f", "-matchany", "-maxdepth", "2")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if n := checkSummary(t, errOut); n.Done != 1 || n.Failed != 0 {
			t.Errorf("want the one agent to answer without failing:\n%s", errOut)
		}
	})

	t.Run("seed3-usb-uevent", func(t *testing.T) {
		if _, err := os.Stat("/sys/devices"); err != nil {
			t.Skip("no /sys/devices here")
		}
		out, errOut, code := run(t, env, "file", "-matchany", "-path", "/sys/devices/", "-name", "^uevent$", "-content", "PRODUCT=20a0/4107")
		if code != 0 {
			t.Fatalf("exit %d\nstderr:\n%s", code, errOut)
		}
		// -matchany: every file named uevent matches (MIG's semantics).
		if !regexp.MustCompile(`(?m) /sys/devices/\S*/uevent \[lastmodified:`).MatchString(out) {
			t.Errorf("no uevent file in the results:\n%.2000s", out)
		}
		if n := checkSummary(t, errOut); n.Success != 1 {
			t.Errorf("want one success:\n%s", errOut)
		}
	})

	t.Run("seed4-netstat-mac", func(t *testing.T) {
		out, errOut, code := run(t, env, "netstat", "-nm", "8c:70:5a:c8:be:50")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if n := checkSummary(t, errOut); n.Success != 1 {
			t.Errorf("want one success:\n%s", errOut)
		}
	})

	t.Run("show-notfound-render-json", func(t *testing.T) {
		out, errOut, code := run(t, env, "file", "-show", "notfound", "-path", "/etc", "-name", "^no-such-file-anywhere$")
		if code != 0 || !regexp.MustCompile(`(?m)^\S+ did not find anything$`).MatchString(out) {
			t.Fatalf("-show notfound: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		out, errOut, code = run(t, env, "file", "-show", "notfound", "-path", "/etc", "-name", "^passwd$")
		if code != 0 || strings.Contains(out, "did not find") || strings.Contains(out, "/etc/passwd") {
			t.Fatalf("-show notfound with a finding agent must print nothing: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}

		out, errOut, code = run(t, env, "file", "-render", "json", "-path", "/etc", "-name", "^passwd$")
		if code != 0 {
			t.Fatalf("-render json: exit %d\nstderr:\n%s", code, errOut)
		}
		var r struct {
			Status        string                       `json:"status"`
			Module        string                       `json:"module"`
			FoundAnything bool                         `json:"foundanything"`
			Success       bool                         `json:"success"`
			Elements      map[string][]json.RawMessage `json:"elements"`
			Statistics    json.RawMessage              `json:"statistics"`
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 {
			t.Fatalf("-render json: want one line for one agent, got %d:\n%s", len(lines), out)
		}
		if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
			t.Fatalf("-render json: %v\n%s", err, out)
		}
		if r.Status != "success" || r.Module != "file" || !r.FoundAnything || !r.Success || len(r.Elements["s1"]) == 0 || len(r.Statistics) == 0 ||
			!strings.Contains(string(r.Elements["s1"][0])+string(r.Elements["s1"][len(r.Elements["s1"])-1]), `"/etc/passwd"`) {
			t.Errorf("-render json: unexpected result %+v\n%s", r, out)
		}
	})

	t.Run("expiration-e", func(t *testing.T) {
		signed := filepath.Join(t.TempDir(), "signed.json")
		if _, errOut, code := run(t, env, "file", "-e", "45s", "-p", "-o", signed, "-path", "/etc", "-name", "^hostname$"); code != 0 {
			t.Fatalf("mig file -e 45s -p: exit %d\n%s", code, errOut)
		}
		b, err := os.ReadFile(signed)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			ValidFrom   time.Time `json:"validfrom"`
			ExpireAfter time.Time `json:"expireafter"`
		}
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		// validfrom is set back by client.ClockSkew for agents whose clock
		// is behind; expireafter is 45 s after validfrom plus that.
		if got := a.ExpireAfter.Sub(a.ValidFrom); got != 45*time.Second+client.ClockSkew {
			t.Errorf("-e 45s: the signed window is %s (%s to %s), want 45s + %s", got, a.ValidFrom, a.ExpireAfter, client.ClockSkew)
		}
		out, errOut, code := run(t, env, "action", "-i", signed)
		if code != 0 || !strings.Contains(out, "/etc/hostname") {
			t.Errorf("launching the -e action: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("target-macro", func(t *testing.T) {
		rc, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(dir)), ".migrc"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(rc, &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["targets"] = map[string]any{
			"default": "status='online'",
			"macros": map[string]string{
				"linuxit":  "environment->>'os'='linux' AND tags->>'operator'='IT'",
				"windows":  "environment->>'os'='windows'",
				"daemons":  "mode='daemon'",
				"allnames": "name LIKE '%'",
			},
		}
		b, _ := json.Marshal(cfg)
		path := filepath.Join(t.TempDir(), "migrc")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, env, "agents", "-c", path, "-t", "allnames")
		if code != 0 || !strings.Contains(out, "online") {
			t.Errorf("mig agents -t allnames: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		out, errOut, code = run(t, env, "file", "-c", path, "-t", "allnames", "-path", "/etc", "-name", "^hostname$")
		if code != 0 || !strings.Contains(out, "/etc/hostname") || !strings.Contains(errOut, "1 agents will be targeted") {
			t.Errorf("mig file -t allnames: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		_, errOut, code = run(t, env, "file", "-c", path, "-t", "windows", "-path", "/etc")
		if code != 1 || !strings.Contains(errOut, "0 agents will be targeted") {
			t.Errorf("mig file -t windows: exit %d, want 1 and no agent targeted\n%s", code, errOut)
		}
	})

	t.Run("seed-json-compliance", func(t *testing.T) {
		// The compliance check as SEED-COMMANDS.md writes it: a bare
		// operation, launched to the online agents.
		f := filepath.Join(t.TempDir(), "compliance.json")
		seed := `{
  "module": "file",
  "parameters": {
    "searches": {
      "checkforverboselogging": {
        "paths": ["/etc/ssh/sshd_config"],
        "contents": ["(?i)^loglevel verbose$"]
      },
      "checkpasswordusageisoff": {
        "paths": ["/etc/ssh/sshd_config"],
        "contents": ["(?i)^passwordauthentication no$"]
      }
    }
  }
}`
		if err := os.WriteFile(f, []byte(seed), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, env, "action", "-i", f, "-show", "all")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if n := checkSummary(t, errOut); n.Success != 1 {
			t.Errorf("want one success:\n%s", errOut)
		}

		// The same file pointed at a config that has both settings finds
		// both searches.
		conf := filepath.Join(t.TempDir(), "sshd_config")
		if err := os.WriteFile(conf, []byte("Port 22\nLogLevel VERBOSE\nPasswordAuthentication no\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f2 := filepath.Join(t.TempDir(), "compliance-here.json")
		if err := os.WriteFile(f2, []byte(strings.ReplaceAll(seed, "/etc/ssh/sshd_config", conf)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = run(t, env, "action", "-i", f2)
		if code != 0 || !strings.Contains(out, "in search 'checkforverboselogging'") || !strings.Contains(out, "in search 'checkpasswordusageisoff'") {
			t.Errorf("want both searches found in %s: exit %d\nstdout:\n%s\nstderr:\n%s", conf, code, out, errOut)
		}
	})

	t.Run("seed-json-ioc-sweep", func(t *testing.T) {
		// The IOC sweep with full SHA-256 values: one of a file planted in
		// /var/tmp (one of the seed's paths), one that matches nothing.
		ioc, err := os.CreateTemp("/var/tmp", "mig-e2e-ioc-")
		if err != nil {
			t.Skipf("cannot write to /var/tmp: %v", err)
		}
		t.Cleanup(func() { os.Remove(ioc.Name()) })
		content := fmt.Sprintf("mig e2e ioc %d\n", time.Now().UnixNano())
		if _, err := ioc.WriteString(content); err != nil {
			t.Fatal(err)
		}
		ioc.Close()
		sum := sha256.Sum256([]byte(content))
		other := sha256.Sum256([]byte("nothing has this content"))
		f := filepath.Join(t.TempDir(), "iocs.json")
		seed := fmt.Sprintf(`{
  "name": "Shellshock IOCs (nginx and more)",
  "target": "environment->>'os' IN ('linux','darwin') AND mode='daemon'",
  "operations": [
    {
      "module": "file",
      "parameters": {
        "searches": {
          "iocs": {
            "paths": ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/tmp", "/var/tmp"],
            "sha256": [%q, %q]
          }
        }
      }
    }
  ]
}`, hex.EncodeToString(sum[:]), hex.EncodeToString(other[:]))
		if err := os.WriteFile(f, []byte(seed), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, env, "action", "-i", f)
		if code != 0 || !strings.Contains(out, ioc.Name()+" [lastmodified:") || !strings.Contains(out, "in search 'iocs'") {
			t.Fatalf("want %s found: exit %d\nstdout:\n%.3000s\nstderr:\n%s", ioc.Name(), code, out, errOut)
		}
		if !strings.Contains(errOut, "1 agents will be targeted") {
			t.Errorf("the seed's target should select the dev agent:\n%s", errOut)
		}

		// The seed as printed on the slide, with hashes cut short, is
		// refused before anything is sent, naming the bad value.
		short := filepath.Join(t.TempDir(), "short.json")
		if err := os.WriteFile(short, []byte(strings.Replace(seed, hex.EncodeToString(other[:]), "e3b0c44298fc1c149afbf4c8996fb924", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code = run(t, env, "action", "-i", short)
		if code != 2 || !strings.Contains(errOut, `"e3b0c44298fc1c149afbf4c8996fb924"`) || strings.Contains(errOut, "will be targeted") {
			t.Errorf("a 32-digit sha256: exit %d, want 2 and an error naming it\n%s", code, errOut)
		}
	})

	t.Run("seed5-ping-notfound", func(t *testing.T) {
		// An agent whose name matches the seed's target; ping's -show
		// notfound lists it if it cannot reach the destination.
		cfg := writeAgentConfigWith(t, dir, apiURLOf(t, srv), func(c map[string]any) { c["name"] = "web-sc13-01" })
		start(t, nil, bins.agent, "-c", cfg)
		waitFor(t, 30*time.Second, "agent web-sc13-01 to be online", func() bool {
			out, _, code := run(t, env, "agents", "-t", "name='web-sc13-01' AND status='online'")
			return code == 0 && strings.Contains(out, "web-sc13-01")
		})
		out, errOut, code := run(t, env, "ping", "-t", "name LIKE '%sc13%'", "-show", "notfound", "-d", "10.22.75.57", "-p", "icmp")
		if code != 0 || !strings.Contains(errOut, "1 agents will be targeted") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		n := checkSummary(t, errOut)
		// 10.22.75.57 is a private address nobody here answers: the agent
		// is listed as not finding it, unless ping itself failed (no raw
		// socket), which mig prints as an error naming the agent.
		if n.Success == 1 && !strings.Contains(out, "web-sc13-01 did not find anything") {
			t.Errorf("-show notfound: want web-sc13-01 listed\nstdout:\n%s\nstderr:\n%s", out, errOut)
		}
		if n.Success != 1 && !strings.Contains(errOut, "web-sc13-01") {
			t.Errorf("a failed ping must name the agent:\n%s", errOut)
		}
	})
}

// gpgKey makes an ed25519 signing key with the real GnuPG in home and returns
// its fingerprint and the path of its exported public key.
func gpgKey(t *testing.T, home, uid string) (fp, pubPath string) {
	t.Helper()
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	gpg("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	sc := bufio.NewScanner(strings.NewReader(string(gpg("--with-colons", "--list-keys", uid))))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "fpr:") {
			fp = fpRE.FindString(sc.Text())
			break
		}
	}
	if fp == "" {
		t.Fatalf("no fingerprint for %s", uid)
	}
	pubPath = filepath.Join(t.TempDir(), fp+".asc")
	if err := os.WriteFile(pubPath, gpg("--armor", "--export", fp), 0o644); err != nil {
		t.Fatal(err)
	}
	return fp, pubPath
}

// TestTwoInvestigatorsGPG runs the two-investigator path through the real
// binaries: the dev investigator creates Bob (key made with GnuPG), alice
// (the dev key) signs an action file with -s, Bob adds his signature with
// gpg and launches it; an agent whose ACL needs weight 2 refuses one
// signature and runs two. Then Bob is disabled, and neither his token nor
// an action carrying his signature is accepted any more. Along the way the
// API's token and permission checks are exercised.
func TestTwoInvestigatorsGPG(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed")
	}
	env, srv, dir := devPlatform(t)
	api := apiURLOf(t, srv)

	gnupg, err := os.MkdirTemp("", "mig-e2e-gpg-") // short: gpg-agent's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent").Run()
		os.RemoveAll(gnupg)
	})
	if err := os.Chmod(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	bobFP, bobPub := gpgKey(t, gnupg, "Bob <bob@example.com>")
	carolFP, carolPub := gpgKey(t, gnupg, "Carol <carol@example.com>")

	devPub, err := os.ReadFile(filepath.Join(dir, "investigator.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	devFP := fingerprintOf(t, devPub)
	clientRC := func(fp string) string {
		b, _ := json.Marshal(map[string]any{
			"api":    map[string]string{"url": api, "ca": filepath.Join(dir, "ca.pem")},
			"signer": map[string]string{"gpg": "gpg", "gpghome": gnupg, "keyid": fp},
		})
		path := filepath.Join(t.TempDir(), "migrc")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bobRC, carolRC := clientRC(bobFP), clientRC(carolFP)

	// Investigators: create, list.
	out, errOut, code := run(t, env, "investigator", "create", "-name", "Bob", "-pubkey", bobPub)
	m := regexp.MustCompile(`^investigator (\d+) "Bob" created, key ` + bobFP).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("investigator create Bob: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	bobID := m[1]
	out, errOut, code = run(t, env, "investigator", "create", "-name", "Carol", "-pubkey", carolPub, "-perm", "agent.read,action.read")
	if code != 0 || !strings.Contains(out, "permissions action.read,agent.read") && !strings.Contains(out, "permissions agent.read,action.read") {
		t.Fatalf("investigator create Carol: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	_, errOut, code = run(t, env, "investigator", "create", "-name", "Bob again", "-pubkey", bobPub)
	if code == 0 || !strings.Contains(errOut, bobFP) {
		t.Errorf("creating a second investigator with Bob's key: exit %d, want an error naming the key\n%s", code, errOut)
	}
	out, errOut, code = run(t, env, "investigator", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^`+bobID+`\s+Bob\s+active\s+`+bobFP).MatchString(out) || !strings.Contains(out, carolFP) {
		t.Fatalf("investigator list: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// Permissions per endpoint, with tokens made by gpg.
	atk := attack(t, "api-auth", "listing investigators without investigator.admin")
	_, errOut, code = run(t, env, "investigator", "list", "-c", carolRC)
	if code == 0 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "investigator.admin") {
		t.Errorf("Carol listing investigators: exit %d, want 403 naming investigator.admin\n%s", code, errOut)
	}
	atk.refused()
	if out, errOut, code = run(t, env, "agents", "-c", carolRC); code != 0 || !strings.Contains(out, "online") {
		t.Errorf("Carol (agent.read) listing agents: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	atk = attack(t, "audit", "reading the audit log without audit.read")
	out, errOut, code = run(t, env, "audit", "-c", carolRC)
	if code == 0 || strings.Contains(out, "action.create") || strings.Contains(out, "investigator.create") {
		atk.executed("Carol read the audit log: exit %d\nstdout:\n%s", code, out)
	}
	if !strings.Contains(errOut, "403") || !strings.Contains(errOut, "audit.read") {
		t.Errorf("Carol reading the audit log: exit %d, want 403 naming audit.read\n%s", code, errOut)
	}
	atk.refused()
	atk = attack(t, "api-auth", "launching without action.create")
	_, errOut, code = run(t, env, "file", "-c", carolRC, "-path", "/etc", "-name", "^hostname$")
	if code == 0 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "action.create") {
		t.Errorf("Carol launching: exit %d, want 403 naming action.create\n%s", code, errOut)
	}
	atk.refused()
	// No token at all.
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("reading the dev CA: %v", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, path := range []string{"/dashboard", "/investigators", "/agents"} {
		atk := attack(t, "api-auth", "GET "+path+" without a token")
		resp, err := hc.Get(api + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: status %d, want 401", path, resp.StatusCode)
		}
		atk.refused()
	}
	atk = attack(t, "api-auth", "GET /dashboard with a garbage token")
	req, _ := http.NewRequest("GET", api+"/dashboard", nil)
	req.Header.Set("Authorization", "Bearer not-a-token")
	if resp, err := hc.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /dashboard with a garbage token: status %d, want 401", resp.StatusCode)
	}
	atk.refused()

	// An agent that trusts the dev investigator and Bob, and needs both.
	acl := fmt.Sprintf(`{"default":{"minimumweight":2,"investigators":{"dev":{"fingerprint":%q,"weight":1},"bob":{"fingerprint":%q,"weight":1}}}}`, devFP, bobFP)
	bobKey, err := os.ReadFile(bobPub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeAgentConfigWith(t, dir, api, func(c map[string]any) {
		c["name"] = "e2e-two-signers"
		c["keyringdata"] = string(devPub) + "\n" + string(bobKey)
		c["acldata"] = acl
	})
	start(t, nil, bins.agent, "-c", cfg)
	tgt := "name='e2e-two-signers'"
	waitFor(t, 30*time.Second, "agent e2e-two-signers to be online", func() bool {
		out, _, code := run(t, env, "agents", "-t", tgt+" AND status='online'")
		return code == 0 && strings.Contains(out, "e2e-two-signers")
	})

	// One signature (weight 1) is refused by that agent.
	atk = attack(t, "forged-action", "one signature where the agent's ACL needs two")
	out, errOut, code = run(t, env, "file", "-t", tgt, "-path", "/etc", "-name", "^hostname$")
	if strings.Contains(out, "/etc/hostname") {
		atk.executed("the agent ran an action with one signature of two:\n%s", out)
	}
	if code != 0 || !strings.Contains(errOut, "e2e-two-signers failed: acl_denied") {
		t.Fatalf("one signature: exit %d, want the agent to refuse with acl_denied\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := checkSummary(t, errOut); n.Failed != 1 {
		t.Errorf("one signature: want 1 failed:\n%s", errOut)
	}
	atk.refused()

	// The dev investigator signs only; Bob adds his gpg signature and
	// launches: weight 2 runs.
	bare := filepath.Join(t.TempDir(), "hostname.json")
	if err := os.WriteFile(bare, []byte(`{"module":"file","parameters":{"searches":{"s1":{"paths":["/etc"],"names":["^hostname$"]}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(t.TempDir(), "signed.json")
	if _, errOut, code := run(t, env, "action", "-i", bare, "-t", tgt, "-s", "-o", signed); code != 0 {
		t.Fatalf("dev -s: exit %d\n%s", code, errOut)
	}
	out, errOut, code = run(t, env, "action", "-c", bobRC, "-i", signed)
	if code != 0 || !strings.Contains(out, "e2e-two-signers /etc/hostname [lastmodified:") {
		t.Fatalf("two signatures: exit %d, want /etc/hostname from e2e-two-signers\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := checkSummary(t, errOut); n.Success != 1 || n.Sent != 1 {
		t.Errorf("two signatures: want 1 of 1 success:\n%s", errOut)
	}

	// Bob signs only now (his key is still active), then is disabled.
	bobFirst := filepath.Join(t.TempDir(), "bob-first.json")
	if _, errOut, code := run(t, env, "action", "-c", bobRC, "-i", bare, "-t", tgt, "-s", "-o", bobFirst); code != 0 {
		t.Fatalf("bob -s: exit %d\n%s", code, errOut)
	}
	out, errOut, code = run(t, env, "investigator", "disable", bobID)
	if code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("investigator disable: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, _, _ = run(t, env, "investigator", "list")
	if !regexp.MustCompile(`(?m)^` + bobID + `\s+Bob\s+disabled\s+`).MatchString(out) {
		t.Errorf("investigator list after disable:\n%s", out)
	}
	atk = attack(t, "api-auth", "a disabled investigator's token")
	_, errOut, code = run(t, env, "agents", "-c", bobRC)
	if code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("disabled Bob listing agents: exit %d, want 401\n%s", code, errOut)
	}
	atk.refused()
	// The dev investigator adds a signature to Bob's and launches: the API
	// refuses the action, since one of its signers is disabled.
	atk = attack(t, "api-auth", "an action signed by a disabled investigator")
	out, errOut, code = run(t, env, "action", "-i", bobFirst)
	if strings.Contains(out, "/etc/hostname") {
		atk.executed("an action signed by a disabled investigator ran:\n%s", out)
	}
	if code == 0 || !strings.Contains(errOut, bobFP) {
		t.Errorf("an action signed by a disabled investigator: exit %d, want a refusal naming %s\nstdout:\n%s\nstderr:\n%s", code, bobFP, out, errOut)
	}
	atk.refused()
}
