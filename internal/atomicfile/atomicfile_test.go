package atomicfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for i, perm := range []os.FileMode{0o600, 0o644, 0o600} {
		data := []byte(strings.Repeat("x", i+1))
		if err := Write(path, data, perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
		if runtime.GOOS != "windows" {
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
			}
		}
	}
	assertNoTemp(t, dir)
}

func TestWriteErrorLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// A directory cannot be renamed over: the write fails after the
	// temporary file is made, and the temporary file goes.
	target := filepath.Join(dir, "d")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(target, []byte("data"), 0o600)
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("Write over a directory: %v, want an error naming %s", err, target)
	}
	assertNoTemp(t, dir)
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Errorf("Write into a missing directory succeeded")
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// payload is generation n's content: a header (generation, length, SHA-256
// of the body) and a large body, so that a torn write cannot pass for a
// complete one.
func payload(n uint64) []byte {
	body := bytes.Repeat([]byte(fmt.Sprintf("generation %d;", n)), (1<<20)/16)
	sum := sha256.Sum256(body)
	h := make([]byte, 16, 16+len(sum)+len(body))
	binary.BigEndian.PutUint64(h, n)
	binary.BigEndian.PutUint64(h[8:], uint64(len(body)))
	return append(append(h, sum[:]...), body...)
}

// checkPayload returns the generation of a complete payload, or an error.
func checkPayload(b []byte) (uint64, error) {
	if len(b) < 48 {
		return 0, fmt.Errorf("%d bytes: shorter than the header", len(b))
	}
	n, size := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	body := b[48:]
	if uint64(len(body)) != size {
		return n, fmt.Errorf("generation %d: body is %d bytes, header says %d", n, len(body), size)
	}
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[16:48]) {
		return n, fmt.Errorf("generation %d: body does not match its hash", n)
	}
	return n, nil
}

// TestMain lets the test binary serve as the writer that
// TestKilledWriterLeavesWholeFile kills.
func TestMain(m *testing.M) {
	if path := os.Getenv("ATOMICFILE_TEST_WRITER"); path != "" {
		for n := uint64(1); ; n++ {
			if err := Write(path, payload(n), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if n == 1 {
				fmt.Println("wrote")
			}
		}
	}
	os.Exit(m.Run())
}

// TestKilledWriterLeavesWholeFile runs a process that writes a file again
// and again, SIGKILLs it at varying moments, and checks that the file then
// holds one complete generation, never a torn one.
func TestKilledWriterLeavesWholeFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Write(path, payload(0), 0o600); err != nil {
		t.Fatal(err)
	}
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	last := uint64(0)
	for i := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_WRITER="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the first complete write, then a little more, so that
		// the kill lands in the middle of some later write.
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("writer: %v", err)
		}
		time.Sleep(time.Duration(i*7%23) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := checkPayload(b)
		if err != nil {
			t.Fatalf("round %d: after SIGKILL the file is torn: %v", i, err)
		}
		if n < 1 {
			t.Fatalf("round %d: generation %d, want one the writer made", i, n)
		}
		last = n
		// Leftover temporary files are the writer's interrupted writes.
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".state.tmp") {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	t.Logf("last generation seen: %s", strconv.FormatUint(last, 10))
}
