package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// fakeBinary writes an executable that prints version for -version, as
// mig-agent does.
func fakeBinary(t *testing.T, dir, name, version string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	script := "#!/bin/sh\n# " + name + "\nif [ \"$1\" = -version ]; then echo " + version + "; exit 0; fi\nexit 1\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestManifest runs mig manifest create, sign, publish, list, show,
// disable and enable against the real API with two investigators, and
// checks that what was published verifies as a loader verifies it.
func TestManifest(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i, name := range []string{"alice", "bob"} {
		inv, err := api.NewInvestigator(name, string(investigatorKey(t, i).pub), api.AllPermissions, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateInvestigator(t.Context(), inv); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewTLSServer(api.New(api.Config{Store: st, Dispatcher: nopDispatcher{}}))
	t.Cleanup(srv.Close)
	alice, bob := writeConfig(t, srv, 0), writeConfig(t, srv, 1)
	t.Setenv("MIG_API_KEY", "")
	dir := t.TempDir()
	agentB := fakeBinary(t, dir, "mig-agent", "2.0.0")
	other := fakeBinary(t, dir, "other", "9.9.9")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"manifest", "create", "-c", alice, "-agent", agentB}, "-name and -agent are required"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-expire", "9000h"}, "-expire 9000h0m0s"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-serial", "0"}, "-serial must be positive"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-loader-version", "1"}, "-loader-version without -loader"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-os", "plan9"}, "cannot run here"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-os", "plan9", "-version", "2"}, `"plan9"`},
		{[]string{"manifest", "create", "-c", alice, "-name", "Prod!", "-agent", agentB}, "Prod!"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", filepath.Join(dir, "missing")}, "missing"},
		{[]string{"manifest", "create", "-c", alice, "-name", "prod", "-agent", dir}, "not a regular file"},
		{[]string{"manifest", "sign", "-c", alice}, "give one manifest ID or -i FILE"},
		{[]string{"manifest", "sign", "-c", alice, "-i", "x", "1"}, "give one manifest ID or -i FILE"},
		{[]string{"manifest", "sign", "-c", alice, "-o", "x", "1"}, "-o goes with -i"},
		{[]string{"manifest", "sign", "-c", alice, "one"}, `"one"`},
		{[]string{"manifest", "publish", "-c", alice}, "-i FILE is required"},
		{[]string{"manifest", "show", "-c", alice}, "give one manifest ID"},
		{[]string{"manifest", "disable", "-c", alice, "0"}, `"0"`},
		{[]string{"manifest", "rotate", "-c", alice}, `unknown verb "rotate"`},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("mig %s: exit %d, stderr %q; want %d naming %q", strings.Join(tc.args, " "), code, stderr, ExitUsage, tc.want)
		}
	}

	// Alice creates and publishes; the version is read from the binary.
	code, stdout, stderr := run(t, "manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-os", "linux", "-arch", "amd64")
	if code != ExitOK || !strings.Contains(stdout, "manifest 1 published: prod/linux/amd64 serial 1") || !strings.Contains(stdout, investigatorKey(t, 0).fp) {
		t.Fatalf("manifest create: exit %d, %q %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "2.0.0") || !strings.Contains(stderr, "uploaded mig-agent") {
		t.Errorf("manifest create stderr %q: want the upload and the version it signs", stderr)
	}

	// Bob checks the binary he reviewed: the wrong one is refused.
	code, _, stderr = run(t, "manifest", "sign", "-c", bob, "-agent", other, "1")
	if code != ExitFailure || !strings.Contains(stderr, "not signing manifest prod/linux/amd64 serial 1") {
		t.Errorf("manifest sign with another binary: exit %d, %q", code, stderr)
	}
	code, stdout, stderr = run(t, "manifest", "sign", "-c", bob, "-agent", agentB, "1")
	if code != ExitOK || !strings.Contains(stdout, investigatorKey(t, 1).fp) || !strings.Contains(stdout, investigatorKey(t, 0).fp) {
		t.Fatalf("manifest sign: exit %d, %q %q", code, stdout, stderr)
	}
	code, _, stderr = run(t, "manifest", "sign", "-c", bob, "1")
	if code != ExitUsage || !strings.Contains(stderr, "already signed") {
		t.Errorf("second manifest sign by bob: exit %d, %q", code, stderr)
	}

	// The file way: created to a file (not published), signed, published.
	file := filepath.Join(dir, "m.json")
	code, stdout, stderr = run(t, "manifest", "create", "-c", alice, "-name", "prod", "-agent", agentB, "-os", "linux", "-arch", "amd64", "-o", file)
	if code != ExitOK || !strings.Contains(stdout, "serial 2") || !strings.Contains(stdout, "not published") {
		t.Fatalf("manifest create -o: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "manifest", "sign", "-c", bob, "-i", file)
	if code != ExitOK || !strings.Contains(stdout, "(2 signatures)") {
		t.Fatalf("manifest sign -i: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "manifest", "publish", "-c", alice, "-i", file)
	if code != ExitOK || !strings.Contains(stdout, "manifest 2 published: prod/linux/amd64 serial 2") {
		t.Fatalf("manifest publish: exit %d, %q %q", code, stdout, stderr)
	}
	code, _, stderr = run(t, "manifest", "publish", "-c", alice, "-i", file)
	if code != ExitFailure || !strings.Contains(stderr, "409") {
		t.Errorf("publishing the same serial again: exit %d, %q", code, stderr)
	}

	// What the server serves verifies with two signatures, as a loader
	// whose ACL needs both would verify it.
	rec, err := st.CurrentManifest(t.Context(), "prod", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	two := acl.ACL{manifest.ACLEntry: {MinimumWeight: 2, Investigators: map[string]acl.Investigator{
		"alice": {Fingerprint: investigatorKey(t, 0).fp, Weight: 1}, "bob": {Fingerprint: investigatorKey(t, 1).fp, Weight: 1}}}}
	if fps, err := manifest.Verify(m, keyring(t), two, time.Now()); err != nil || len(fps) != 2 || m.Serial != 2 {
		t.Errorf("served manifest %s: Verify = %v, %v; want serial 2 by both", m, fps, err)
	}

	code, stdout, _ = run(t, "manifest", "disable", "-c", alice, "2")
	if code != ExitOK || !strings.Contains(stdout, "manifest 2 disabled") {
		t.Errorf("manifest disable: exit %d, %q", code, stdout)
	}
	if rec, err := st.CurrentManifest(t.Context(), "prod", "linux", "amd64"); err != nil || rec.Serial != 1 {
		t.Errorf("after disabling serial 2, the current manifest is %+v, %v; want serial 1", rec.Serial, err)
	}
	code, stdout, _ = run(t, "manifest", "list", "-c", alice)
	if code != ExitOK || !strings.Contains(stdout, "disabled") || !strings.Contains(stdout, "mig-agent 2.0.0") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("manifest list: exit %d, %q", code, stdout)
	}
	code, stdout, _ = run(t, "manifest", "enable", "-c", alice, "2")
	if code != ExitOK || !strings.Contains(stdout, "manifest 2 active") {
		t.Errorf("manifest enable: exit %d, %q", code, stdout)
	}
	code, stdout, _ = run(t, "manifest", "show", "-c", alice, "2")
	if code != ExitOK || !strings.Contains(stdout, m.Files[0].SHA256) || !strings.Contains(stdout, "signatures: 2") {
		t.Errorf("manifest show: exit %d, %q", code, stdout)
	}
	code, stdout, _ = run(t, "manifest", "show", "-c", alice, "-render", "json", "2")
	if code != ExitOK || !strings.Contains(stdout, `"serial":2`) || !strings.Contains(stdout, `"body":`) {
		t.Errorf("manifest show -render json: exit %d, %q", code, stdout)
	}
	code, _, stderr = run(t, "manifest", "show", "-c", alice, "7")
	if code != ExitFailure || !strings.Contains(stderr, "404") {
		t.Errorf("manifest show of an unknown ID: exit %d, %q", code, stderr)
	}

	// A binary for another platform needs its version given.
	code, stdout, stderr = run(t, "manifest", "create", "-c", alice, "-name", "prod", "-agent", other, "-os", "windows", "-arch", "arm64", "-version", "3.0.0")
	if code != ExitOK || !strings.Contains(stdout, "prod/windows/arm64 serial 1") {
		t.Errorf("manifest create for windows: exit %d, %q %q", code, stdout, stderr)
	}
}
