//go:build linux || darwin || freebsd

package file

import (
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testWorker returns a worker of a run of params whose searches apply to
// the files of dir, as the walk sets one up when it enters dir.
func testWorker(t *testing.T, params, dir string) (*engine, *worker) {
	t.Helper()
	r, err := ParseParameters([]byte(params))
	if err != nil {
		t.Fatalf("ParseParameters(%s): %v", params, err)
	}
	rr := r.(*runner)
	e := &engine{
		r:         rr,
		now:       time.Now(),
		matches:   make([][]Match, len(rr.searches)),
		limited:   make([]atomic.Bool, len(rr.searches)),
		maxErrors: DefaultMaxErrors,
	}
	e.cond = sync.NewCond(&e.mu)
	w := newWorker(e)
	t.Cleanup(w.release)
	w.active = w.activeFor(dir, false)
	if len(w.active) == 0 {
		t.Fatalf("no search applies to %s", dir)
	}
	return e, w
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// TestVanishedFile checks a file that the directory listing showed and
// that is gone when the search gets to it: it is counted as openfailed and
// named, whether the search needed its metadata or its content.
func TestVanishedFile(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{`"contents":["x"]`, `"sizes":[">1"]`, `"names":["^gone$"]`, `"names":["^gone$"],"options":{"returnsha256":true}`} {
		t.Run(body, func(t *testing.T) {
			e, w := testWorker(t, `{"searches":{"s":{"paths":[`+quote(dir)+`],`+body+`}}}`, dir)
			w.file(dir, "gone", "", nil)
			if w.stats.OpenFailed != 1 {
				t.Errorf("openfailed = %d, want 1", w.stats.OpenFailed)
			}
			if len(e.errs) != 1 || !strings.Contains(e.errs[0], filepath.Join(dir, "gone")) {
				t.Errorf("errors = %q, want one naming the file", e.errs)
			}
			if len(e.matches[0]) != 0 {
				t.Errorf("matches = %+v, want none", e.matches[0])
			}
		})
	}
}

// TestReplacedByFIFO checks a regular file that a FIFO replaced after the
// directory listing: the search neither blocks on it nor reads what a
// writer put in it, and counts it as skipped. A negated content filter,
// which an empty file matches, must not match it either.
func TestReplacedByFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "f")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, writer := range []bool{false, true} {
		for _, body := range []string{`"contents":["data"]`, `"contents":["!nothing"]`, `"md5":["` + strings.Repeat("0", 32) + `"],"options":{"mismatch":["md5"]}`,
			`"names":["^f$"],"options":{"returnsha256":true}`} {
			t.Run(body, func(t *testing.T) {
				rw := -1
				if writer {
					// O_RDWR opens a FIFO without waiting for a reader;
					// O_NONBLOCK lets the test check it without blocking.
					var err error
					if rw, err = syscall.Open(fifo, syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err != nil {
						t.Fatal(err)
					}
					defer syscall.Close(rw)
					if _, err := syscall.Write(rw, []byte("data\n")); err != nil {
						t.Fatal(err)
					}
				}
				e, w := testWorker(t, `{"searches":{"s":{"paths":[`+quote(dir)+`],`+body+`}}}`, dir)
				w.file(dir, "f", "", nil)
				if w.stats.Skipped != 1 || w.stats.OpenFailed != 0 {
					t.Errorf("skipped = %d, openfailed = %d; want 1 and 0", w.stats.Skipped, w.stats.OpenFailed)
				}
				if len(e.matches[0]) != 0 {
					t.Errorf("matches = %+v, want none", e.matches[0])
				}
				if writer {
					buf := make([]byte, 16)
					n, err := syscall.Read(rw, buf)
					if err != nil || string(buf[:max(n, 0)]) != "data\n" {
						t.Errorf("the FIFO holds %q (%v), want the writer's data left unread", buf[:max(n, 0)], err)
					}
				}
			})
		}
	}
}
