package memory

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/migplatform/mig/internal/module"
)

// childEnv makes the test binary a child holding two markers in memory:
// the value is both markers, each XORed with 0x55 and in hexadecimal, so
// that the plain markers exist only where the child builds them.
const childEnv = "MIG_MEMORY_TEST_CHILD"

// childChunk is the chunk size the test scans with; the second marker
// straddles a multiple of it.
const childChunk = 64 << 10

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(child(v))
	}
	os.Exit(m.Run())
}

func decodeInto(dst []byte, x string) {
	for i := range dst {
		b, _ := strconv.ParseUint(x[2*i:2*i+2], 16, 8)
		dst[i] = byte(b) ^ 0x55
	}
}

// child builds the first marker on the heap and the second across a
// childChunk border of an anonymous mapping, prints the second's address,
// and waits for its stdin to close.
func child(v string) int {
	x1, x2, _ := strings.Cut(v, ",")
	m1 := make([]byte, len(x1)/2)
	decodeInto(m1, x1)
	mm, err := syscall.Mmap(-1, 0, 4*childChunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		fmt.Println("mmap:", err)
		return 1
	}
	addr := uintptr(unsafe.Pointer(&mm[0]))
	border := (addr/childChunk + 1) * childChunk
	off := border - addr - uintptr(len(x2)/4)
	decodeInto(mm[off:off+uintptr(len(x2)/2)], x2)
	fmt.Printf("ready %#x\n", addr+off)
	io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(m1)
	runtime.KeepAlive(mm)
	return 0
}

func xorHex(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] ^= 0x55
	}
	return hex.EncodeToString(b)
}

// startChild starts the test binary as a child holding two new markers and
// returns its pid, the markers, and the second marker's address.
func startChild(t *testing.T) (pid int, m1, m2, addr2 string) {
	t.Helper()
	m1 = "MIGMARKER1-" + rand.Text()
	m2 = "MIGMARKER2-" + rand.Text()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+xorHex(m1)+","+xorHex(m2))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	return cmd.Process.Pid, m1, m2, strings.TrimSpace(strings.TrimPrefix(line, "ready "))
}

func runSearch(t *testing.T, s Search, pids []int) (Elements, Statistics) {
	t.Helper()
	raw, err := json.Marshal(Parameters{Searches: map[string]Search{"s1": s}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseParameters(raw)
	if err != nil {
		t.Fatal(err)
	}
	r.chunkSize = childChunk
	r.pids = pids
	res := r.Run(t.Context(), module.Env{})
	if !res.Success {
		t.Fatalf("Run failed: %v", res.Errors)
	}
	var (
		el Elements
		st Statistics
	)
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(res.Statistics, &st); err != nil {
		t.Fatal(err)
	}
	if res.FoundAnything != (len(el["s1"]) > 0) {
		t.Errorf("FoundAnything = %v with elements %+v", res.FoundAnything, el)
	}
	return el, st
}

func TestScanChildProcess(t *testing.T) {
	pid, m1, m2, addr2 := startChild(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(exe)
	for _, tc := range []struct {
		name string
		s    Search
		want string // the hits of the child, JSON, or "" for no match
	}{
		{"content on the heap", Search{Contents: []string{m1}},
			`[{"filter":"content","value":"` + m1 + `","address":"*"}]`},
		{"bytes across a chunk border", Search{Bytes: []string{hex.EncodeToString([]byte(m2))}},
			`[{"filter":"bytes","value":"` + hex.EncodeToString([]byte(m2)) + `","address":"` + addr2 + `"}]`},
		{"regex across a chunk border", Search{Contents: []string{"MIGMARKER2-" + m2[11:]}},
			`[{"filter":"content","value":"MIGMARKER2-` + m2[11:] + `","address":"` + addr2 + `"}]`},
		{"name, library and content", Search{Names: []string{"^" + regexpQuote(name) + "$"}, Libraries: []string{regexpQuote(name) + "$"}, Contents: []string{m1}},
			js([]Hit{{Filter: "name", Value: "^" + regexpQuote(name) + "$"}, {Filter: "library", Value: regexpQuote(name) + "$", Library: exe}, {Filter: "content", Value: m1, Address: "*"}})},
		{"a marker nobody holds", Search{Contents: []string{"MIGMARKER3-" + rand.Text()}}, ""},
		{"matchany with one missing", Search{Contents: []string{"MIGMARKER3-" + rand.Text(), m1}, Options: Options{MatchAny: new(true)}},
			`[{"filter":"content","value":"` + m1 + `","address":"*"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el, st := runSearch(t, tc.s, []int{pid})
			if st.Processes != 1 || st.ProcessesSkipped != 0 {
				t.Errorf("statistics %+v, want one process scanned", st)
			}
			var got string
			for _, m := range el["s1"] {
				if m.Process.PID != pid || m.Process.Name != name {
					t.Errorf("matched process %+v, want pid %d name %q", m.Process, pid, name)
				}
				for i := range m.Matched {
					if m.Matched[i].Address != "" && m.Matched[i].Address != addr2 {
						m.Matched[i].Address = "*"
					}
				}
				b, _ := json.Marshal(m.Matched)
				got = string(b)
			}
			if got != tc.want {
				t.Errorf("child matched %s, want %s", got, tc.want)
			}
		})
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func regexpQuote(s string) string {
	return strings.NewReplacer(".", `\.`, "+", `\+`).Replace(s)
}

// TestLibraryOfRealProcess finds libc in a dynamically linked sleep, over
// every process of the machine.
func TestLibraryOfRealProcess(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	cmd := exec.CommandContext(t.Context(), sleep, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until the dynamic loader has mapped libc.
	var maps []byte
	for range 200 {
		maps, _ = os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
		if strings.Contains(string(maps), "libc") {
			break
		}
		runtime.Gosched()
		syscall.Nanosleep(&syscall.Timespec{Nsec: 10e6}, nil)
	}
	if !strings.Contains(string(maps), "libc") {
		t.Skip("sleep is not linked with libc here")
	}
	el, st := runSearch(t, Search{Names: []string{"^sleep$"}, Libraries: []string{`/libc[.-]`}}, nil)
	if st.Processes < 2 || st.ProcessesRead != 0 || st.BytesRead != 0 {
		t.Errorf("statistics %+v, want every process looked at and no memory read", st)
	}
	found := false
	for _, m := range el["s1"] {
		if m.Process.PID == cmd.Process.Pid {
			found = true
			if m.Process.Name != "sleep" || len(m.Matched) != 2 || !strings.Contains(m.Matched[1].Library, "libc") {
				t.Errorf("match %+v, want sleep with its libc", m)
			}
		}
	}
	if !found {
		t.Errorf("sleep (pid %d) not found in %+v", cmd.Process.Pid, el)
	}
}
