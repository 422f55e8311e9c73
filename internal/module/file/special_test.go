//go:build linux

package file_test

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/file"
)

// TestUnreadableProcFile reads /proc/self/mem, which opens but cannot be
// read from its start (even by root): it is counted as openfailed and
// named, and the search goes on.
func TestUnreadableProcFile(t *testing.T) {
	res, el, st := run(t, t.Context(), `{"searches":{"s":{"paths":["/proc/self"],"names":["^(mem|cmdline)$"],"contents":["."],"options":{"maxdepth":1}}}}`)
	if !res.Success {
		t.Errorf("Success = false, errors %q", res.Errors)
	}
	if st.OpenFailed != 1 || !strings.Contains(strings.Join(res.Errors, "\n"), "/proc/self/mem") {
		t.Errorf("openfailed = %d, errors %q; want /proc/self/mem counted and named", st.OpenFailed, res.Errors)
	}
	if got := files(t, el, "s", "/proc/self"); !slices.Equal(got, []string{"cmdline"}) {
		t.Errorf("matches = %q, want cmdline", got)
	}
}

// TestProcCmdline is the seed's "which host runs elasticsearch": every
// /proc/<pid>/cmdline (arguments separated by NUL bytes, size 0) whose
// command line matches, here this test's own process.
func TestProcCmdline(t *testing.T) {
	self, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Skip("no /proc")
	}
	// The program name and the NUL byte that ends it, as the kernel keeps
	// the arguments.
	arg0, _, _ := bytes.Cut(self, []byte{0})
	re := regexp.QuoteMeta(string(arg0)) + `\x00`
	_, el, _ := run(t, t.Context(), `{"searches":{"s":{"paths":["/proc"],"names":["^cmdline$"],"contents":[`+jsonString(re)+`],"options":{"maxdepth":2}}}}`)
	want := "/proc/" + strconv.Itoa(os.Getpid()) + "/cmdline"
	found := false
	for _, m := range el["s"] {
		found = found || m.File == want
	}
	if !found {
		t.Errorf("matches = %+v, want %s among them", el["s"], want)
	}
}

// TestSysDevicesUevent is the seed's USB device search: /sys/devices/ (with
// its trailing slash) for uevent files holding a line, here one taken from
// a uevent file of this machine. Sysfs files report a size of 4096 whatever
// they hold; the module must find exactly the files a plain walk finds.
func TestSysDevicesUevent(t *testing.T) {
	var line string
	var uevents []string
	err := filepath.WalkDir("/sys/devices", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && d.Name() == "uevent" {
			uevents = append(uevents, p)
			if line == "" {
				if b, err := os.ReadFile(p); err == nil {
					if l, _, _ := strings.Cut(string(b), "\n"); strings.Contains(l, "=") {
						line = l
					}
				}
			}
		}
		return nil
	})
	if err != nil || line == "" {
		t.Skipf("no uevent file with a line under /sys/devices (%v)", err)
	}
	var want []string
	for _, p := range uevents {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if strings.Contains(sc.Text(), line) {
				want = append(want, p)
				break
			}
		}
	}
	slices.Sort(want)
	res, el, st := run(t, t.Context(), `{"searches":{"usb":{"paths":["/sys/devices/"],"names":["^uevent$"],"contents":[`+
		jsonString(regexp.QuoteMeta(line))+`],"options":{"matchlimit":100000}}}}`)
	if !res.Success {
		t.Errorf("Success = false, errors %q", res.Errors)
	}
	var got []string
	for _, m := range el["usb"] {
		got = append(got, m.File)
	}
	if !slices.Equal(got, want) {
		t.Errorf("uevent files holding %q:\ngot  %q\nwant %q", line, got, want)
	}
	if st.FilesCount < len(uevents) {
		t.Errorf("filescount = %d, want at least the %d uevent files", st.FilesCount, len(uevents))
	}
}

// TestDevicesAndFIFOs gives devices and a FIFO as paths and walks /dev:
// none is ever read (/dev/zero would never end, a FIFO without a writer
// would look empty and match a negated content filter), each counts as
// skipped.
func TestDevicesAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	res, el, st := run(t, t.Context(), `{"searches":{"s":{"paths":["/dev/zero","/dev/null",`+jsonString(fifo)+`],"contents":["!x"]}}}`)
	if !res.Success || len(el["s"]) != 0 || st.Skipped != 3 {
		t.Errorf("success %v, matches %+v, skipped %d; want true, none, 3", res.Success, el["s"], st.Skipped)
	}
	res, el, st = run(t, t.Context(), `{"searches":{"s":{"paths":["/dev"],"contents":["!x"],"options":{"maxdepth":1}}}}`)
	if !res.Success || st.Skipped == 0 {
		t.Errorf("success %v, skipped %d; want true and the devices skipped", res.Success, st.Skipped)
	}
	for _, m := range el["s"] {
		if !strings.HasPrefix(m.FileInfo.Mode, "-") {
			t.Errorf("match %+v is not a regular file", m)
		}
	}
}

// TestStopDuringRead cancels a search while it hashes a 1 TiB sparse
// file (hours of reading): the search must stop, report that it was
// interrupted, and close the file.
func TestStopDuringRead(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		f.Close()
		t.Skipf("no 1 TiB sparse file here: %v", err)
	}
	f.Close()
	r, err := file.ParseParameters([]byte(`{"searches":{"s":{"paths":[` + jsonString(dir) + `],"sha256":["` + strings.Repeat("0", 64) + `"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var resSuccess bool
	var resErrors []string
	go func() {
		defer close(done)
		res := r.Run(ctx, module.Env{MaxProcs: 1})
		resSuccess, resErrors = res.Success, res.Errors
	}()
	// Cancel once the file is open, i.e. while it is being read.
	for !openBy(t, big) {
		select {
		case <-done:
			t.Fatal("the search ended before it read the file")
		default:
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
	}
	cancel()
	<-done
	if resSuccess || !strings.Contains(strings.Join(resErrors, "\n"), "interrupted") {
		t.Errorf("success %v, errors %q; want an interrupted search", resSuccess, resErrors)
	}
	if openBy(t, big) {
		t.Errorf("%s is still open after the search returned", big)
	}
}

// openBy reports whether this process has the file at path open.
func openBy(t *testing.T, path string) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			return true
		}
	}
	return false
}
