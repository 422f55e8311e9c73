//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/server"
)

// underUmask0 runs a command through sh with umask 0, so that the modes of
// what it writes are the ones the code asked for, not what a umask left.
func underUmask0(name string, args ...string) []string {
	return append([]string{"-c", `umask 0; exec "$0" "$@"`, name}, args...)
}

// migUmask0 runs mig with umask 0 and returns its output and exit code.
func migUmask0(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", underUmask0(bins.mig, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("mig %s: %v", strings.Join(args, " "), err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// wantMode says what mode a file or directory the dev platform or mig
// wrote under HOME must have. Everything is 0600 in 0700 directories, but
// the public certificates and key (0644) and the simulated agents' fixture
// trees, which imitate an ordinary system's files (0755 and 0644).
func wantMode(rel string, dir bool) fs.FileMode {
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) >= 5 && parts[0] == ".mig" && parts[1] == "dev" && parts[2] == "fleet" && parts[4] == "root" {
		if dir || strings.HasSuffix(rel, filepath.Join("usr", "bin", "migtool")) {
			return 0o755
		}
		return 0o644
	}
	if dir {
		return 0o700
	}
	switch rel {
	case ".mig/dev/ca.pem", ".mig/dev/server.pem", ".mig/dev/investigator.pub.asc":
		return 0o644
	}
	return 0o600
}

// checkModes stats every file and directory under home and checks its mode
// against wantMode; it returns the relative paths it saw.
func checkModes(t *testing.T, home string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file renamed while we walked
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(home, path)
		if rel == "." {
			return nil
		}
		seen[rel] = true
		if fi.Mode()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symbolic link", rel)
			return nil
		}
		if want := wantMode(rel, d.IsDir()); fi.Mode().Perm() != want {
			t.Errorf("%s is mode %04o, want %04o", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestDevFileModes runs the real "mig-server -dev" (with its local agent
// and two simulated agents) and mig, both with umask 0, makes them write
// everything they write (an action, its results, the audit state), then
// checks the mode of every file and directory under HOME, while the server
// runs (the SQLite -wal and -shm exist then) and after it stopped. A new
// file written with a mode it should not have fails this test.
func TestDevFileModes(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	p := start(t, env, "/bin/sh", underUmask0(bins.server, "-dev", "-api", freeAddr(t), "-relay", freeAddr(t), "-agents", "2")...)
	waitFor(t, 60*time.Second, "the local agent and two simulated agents to be online", func() bool {
		out, code := migUmask0(t, env, "agents", "-render", "json")
		return code == 0 && strings.Count(out, `"online"`) == 3
	})
	if out, code := migUmask0(t, env, "file", "-path", "/etc", "-name", "^hostname$"); code != 0 {
		t.Fatalf("mig file: exit %d\n%s", code, out)
	}
	if out, code := migUmask0(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("mig audit verify: exit %d\n%s", code, out)
	}

	seen := checkModes(t, home)
	dev := filepath.Join(".mig", "dev")
	want := []string{".migrc", ".mig", filepath.Join(".mig", "audit-heads.json"), filepath.Join(".mig", "agentkeys")}
	for _, f := range []string{"ca.pem", "server.pem", "server.key", "investigator.asc", "investigator.pub.asc",
		"enrollment-token", "client.json", "acl.json", "mig.db", "mig.db-wal", "mig.db-shm",
		"agent", "agent/agent.key", "agent/relay.json", "agent/journal.json", "agent/inbox", "agent/outbox",
		"fleet", "fleet/a00000/state/agent.key", "fleet/a00001/state/relay.json", "fleet/a00000/root/etc/passwd"} {
		want = append(want, filepath.Join(dev, filepath.FromSlash(f)))
	}
	for _, f := range want {
		if !seen[f] {
			t.Errorf("%s was not written (the test checks nothing of it)", f)
		}
	}
	if t.Failed() {
		t.Logf("seen: %v", seen)
	}

	p.stop()
	checkModes(t, home)
}

// TestServerRefusesOpenFiles starts the real mig-server with its secrets
// open to other users, in -dev and from a configuration file: it must refuse
// to start, naming the file, its mode and the fix; once the file is closed
// again, the same command starts.
func TestServerRefusesOpenFiles(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	devArgs := []string{"-dev", "-no-agent", "-api", freeAddr(t), "-relay", freeAddr(t)}
	startOK := func(args ...string) {
		t.Helper()
		p := start(t, env, bins.server, args...)
		waitFor(t, 30*time.Second, "mig-server to start", func() bool { return strings.Contains(p.output(), "mig-server started") })
		p.stop()
	}
	refused := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bins.server, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil || cmd.ProcessState.ExitCode() != 1 {
			t.Fatalf("mig-server %s: %v, want exit 1\n%s", strings.Join(args, " "), err, out)
		}
		if bytes.Contains(out, []byte("mig-server started")) {
			t.Errorf("mig-server started before refusing:\n%s", out)
		}
		return string(out)
	}
	startOK(devArgs...) // makes the keys and the database
	dir := filepath.Join(home, ".mig", "dev")

	for _, f := range []struct {
		name, what string
		mode       fs.FileMode
	}{
		{"server.key", "api.key", 0o644},
		{"server.key", "api.key", 0o640},
		{"mig.db", "store database", 0o644},
		{"enrollment-token", "dev enrollment token", 0o604},
		{"investigator.asc", "dev investigator key", 0o640},
		{"ca.pem", "relay.ca", 0o666},
	} {
		atk := attack(t, "file-modes", "mig-server -dev with "+f.name+" mode "+fmtMode(f.mode))
		path := filepath.Join(dir, f.name)
		fi, err := os.Stat(path)
		must(t, err)
		must(t, os.Chmod(path, f.mode))
		out := refused(devArgs...)
		for _, w := range []string{f.what + " " + path + " is mode " + fmtMode(f.mode), "chmod "} {
			if !strings.Contains(out, w) {
				t.Errorf("with %s mode %s: %q, want it to say %q", f.name, fmtMode(f.mode), out, w)
			}
		}
		must(t, os.Chmod(path, fi.Mode().Perm()))
		atk.refused()
	}
	// An open dev directory is closed, with a warning, and the server runs.
	must(t, os.Chmod(dir, 0o755))
	p := start(t, env, bins.server, devArgs...)
	waitFor(t, 30*time.Second, "mig-server to start", func() bool { return strings.Contains(p.output(), "mig-server started") })
	if !strings.Contains(p.output(), "made it 0700") {
		t.Errorf("no warning about the open dev directory:\n%s", p.output())
	}
	p.stop()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dev directory mode %v (%v) after a start, want 0700", fi.Mode().Perm(), err)
	}

	// From a configuration file: the file itself, which holds the
	// enrollment tokens, and the database's directory.
	prod := filepath.Join(t.TempDir(), "prod")
	must(t, os.Mkdir(prod, 0o700))
	_, certFile, keyFile, err := server.EnsureDevTLS(prod)
	must(t, err)
	dbDir := filepath.Join(prod, "db")
	must(t, os.Mkdir(dbDir, 0o700))
	conf, _ := json.Marshal(map[string]any{
		"api":              map[string]string{"listen": freeAddr(t), "cert": certFile, "key": keyFile},
		"relay":            map[string]string{"listen": freeAddr(t)},
		"store":            "sqlite:" + filepath.Join(dbDir, "mig.db"),
		"enrollmenttokens": []string{"e2e-enrollment-token-0123456789"},
	})
	confFile := filepath.Join(prod, "server.json")
	must(t, os.WriteFile(confFile, conf, 0o600))
	must(t, os.Chmod(confFile, 0o644))
	atk := attack(t, "file-modes", "mig-server -c with its configuration (enrollment tokens) mode 0644")
	out := refused("-c", confFile)
	if w := "configuration (it holds enrollmenttokens) " + confFile + " is mode 0644"; !strings.Contains(out, w) || !strings.Contains(out, "chmod 600 "+confFile) {
		t.Errorf("configuration 0644: %q, want it to say %q and the fix", out, w)
	}
	atk.refused()
	must(t, os.Chmod(confFile, 0o600))
	must(t, os.Chmod(dbDir, 0o777))
	atk = attack(t, "file-modes", "mig-server -c with its database in a directory mode 0777")
	out = refused("-c", confFile)
	if w := "is in " + dbDir + ", which is mode 0777"; !strings.Contains(out, w) || !strings.Contains(out, "chmod go-w "+dbDir) {
		t.Errorf("database directory 0777: %q, want it to say %q and the fix", out, w)
	}
	atk.refused()
	must(t, os.Chmod(dbDir, 0o700))
	startOK("-c", confFile)
	fi, err := os.Stat(filepath.Join(dbDir, "mig.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new database: mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func fmtMode(m fs.FileMode) string { return fmt.Sprintf("%04o", m.Perm()) }
