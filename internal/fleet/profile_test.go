package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/fleet"
	"github.com/migplatform/mig/internal/fleet/bench"
)

// TestProfileFleet runs the server, a fleet and mig-bench in this process
// and writes CPU, heap, block and mutex profiles of the benchmark run. It is
// a tool, not a check: it runs only when MIG_FLEET_PROFILE_N is set, e.g.
//
//	MIG_FLEET_PROFILE_N=5000 MIG_FLEET_PROFILE_DIR=/tmp/prof \
//	  go test -run TestProfileFleet -timeout 30m ./internal/fleet/
//
// With the relay and the agents in one process, each agent costs two open
// files here, so N stays under about 9,000.
func TestProfileFleet(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MIG_FLEET_PROFILE_N"))
	if n <= 0 {
		t.Skip("set MIG_FLEET_PROFILE_N to profile a fleet")
	}
	out := os.Getenv("MIG_FLEET_PROFILE_DIR")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.RaiseFileLimit(); err != nil {
		t.Log(err)
	}
	p := newPlatform(t)
	priv := filepath.Join(t.TempDir(), "investigator.asc")
	if err := os.WriteFile(priv, p.privateKey, 0o600); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(t.TempDir(), "migrc")
	conf := fmt.Sprintf(`{"api":{"url":%q,"ca":%q},"signer":{"keyfile":%q}}`, p.srv.APIURL(), p.caFile, priv)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(fleet.Config{Server: p.srv.APIURL(), CA: p.caFile, EnrollmentToken: p.cfg.EnrollmentTokens[0],
		KeyringData: p.pub, ACLData: p.acl(), N: n, Dir: filepath.Join(fleet.DefaultDir()+"-profile", strconv.Itoa(os.Getpid())),
		StartConcurrency: 128, AgentLogLevel: slog.LevelWarn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(f.Config().Dir)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	select {
	case <-f.Ready():
	case <-time.After(20 * time.Minute):
		t.Fatalf("fleet not ready: %+v", f.Stats())
	}
	time.Sleep(5 * time.Second) // hellos stored
	runtime.SetBlockProfileRate(int(time.Millisecond))
	runtime.SetMutexProfileFraction(10)
	cpu, err := os.Create(filepath.Join(out, "cpu.prof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.Run(t.Context(), bench.Config{ClientConfig: rc, PID: os.Getpid(), WaitAgents: n}, t.Output())
	pprof.StopCPUProfile()
	cpu.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"heap", "block", "mutex", "goroutine"} {
		w, err := os.Create(filepath.Join(out, name+".prof"))
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup(name).WriteTo(w, 0); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	t.Logf("profiles in %s; %s", out, rep.Line())
}
