package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha3"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileModule runs the file module's newer filters through the whole
// platform: mig, the server, the relay and the agent's module child
// process.
func TestFileModule(t *testing.T) {
	env, _, _ := devPlatform(t)
	dir, err := os.MkdirTemp("/tmp", "mig-e2e-file-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("user=alice\ntoken=e2e-secret-7\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tool := []byte("#!/bin/sh\necho e2e\n")
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"app.log.gz": {gz.Bytes(), 0o644},
		"tool":       {tool, 0o755},
		"keys":       {[]byte("# keys\nssh-ed25519 AAAAgood alice\nssh-ed25519 AAAAevil mallory\n"), 0o600},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha3.Sum256(tool)
	tests := []struct {
		name string
		args []string
		want []string // each must be in stdout
	}{
		{"decompress", []string{"file", "-path", dir, "-content", "^token=e2e-secret-7$", "-decompress"},
			[]string{filepath.Join(dir, "app.log.gz") + " [lastmodified:"}},
		{"sha3, mode and size, matchany with checks", []string{"file", "-path", dir, "-sha3", hex.EncodeToString(sum[:]),
			"-mode", "^-rwx", "-size", ">1m", "-matchany"},
			[]string{filepath.Join(dir, "tool") + " [", "on checks mode='^-rwx' sha3='" + hex.EncodeToString(sum[:]) + "'"}},
		{"macroal with mismatch finds the rogue key", []string{"file", "-path", dir, "-name", "^keys$",
			"-content", "^(#.*|ssh-ed25519 AAAAgood .*)$", "-macroal", "-mismatch", "content"},
			[]string{filepath.Join(dir, "keys") + " [lastmodified:", "mode:-rw-------"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, env, tt.args...)
			if code != 0 {
				t.Fatalf("mig %q: exit %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("mig %q: stdout lacks %q\nstdout:\n%s\nstderr:\n%s", tt.args, w, out, errOut)
				}
			}
		})
	}
	t.Run("bad filters refused before sending", func(t *testing.T) {
		for _, args := range [][]string{
			{"file", "-path", dir, "-size", "10q"},
			{"file", "-path", dir, "-mtime", "90"},
			{"file", "-path", dir, "-sha3", "abcd"},
			{"file", "-path", dir, "-mismatch", "colour"},
		} {
			_, errOut, code := run(t, env, args...)
			if code == 0 || strings.Contains(errOut, "will be targeted") || !strings.Contains(errOut, args[len(args)-1]) {
				t.Errorf("mig %q: exit %d, stderr:\n%s", args, code, errOut)
			}
		}
	})
}
