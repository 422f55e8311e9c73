package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/relay/amqprelay/amqptest"
	"github.com/migplatform/mig/internal/server"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
	"github.com/migplatform/mig/internal/target"
)

// Sizes of TestSeveralServersKilled.
const (
	msFleetSize = 60    // simulated agents (mig-fleet), answering every command
	msPhantoms  = 20000 // agents only in the store, so that one dispatch takes a while
	msPrefix    = "msfleet"
)

// TestSeveralServersKilled runs two mig-server processes against one
// PostgreSQL schema and one RabbitMQ virtual host, with a mig-fleet of
// simulated agents enrolled through one of them, and kills (SIGKILL) one
// server at three moments: while idle, while results are being ingested,
// and in the middle of the dispatch of a large action. Each killed server is
// started again. In the end every action has exactly one command per
// targeted agent, every command is in a terminal state with its result
// stored once, counters add up to the number of targeted agents, and no
// action is left pending or in flight.
//
// The large action targets the fleet and msPhantoms agents that exist only
// in the store: dispatching it takes long enough for the kill to land
// inside it, and the phantoms' commands end expired, so it runs with a short
// expiration.
func TestSeveralServersKilled(t *testing.T) {
	pgtest.URL(t) // skip (or fail) before making anything without PostgreSQL
	amqpURL, mgmtURL := rabbitVHost(t)
	pgURL := pgtest.Schema(t, 8)
	ctx := t.Context()
	fleetBin := buildTestFleet(t)

	dir := t.TempDir()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	const token = "multi-server-e2e-enrollment-token"
	servers := map[string]*msServer{}
	for _, name := range []string{"a", "b"} {
		cfg := map[string]any{
			"api":              map[string]string{"listen": freeAddr(t), "cert": certFile, "key": keyFile},
			"relay":            map[string]string{"url": amqpURL, "managementurl": mgmtURL},
			"store":            pgURL,
			"enrollmenttokens": []string{token},
		}
		b, _ := json.Marshal(cfg)
		path := filepath.Join(dir, "server-"+name+".json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		servers[name] = &msServer{name: name, config: path, api: "https://" + cfg["api"].(map[string]string)["listen"] + "/api/v1"}
	}
	srvA, srvB := servers["a"], servers["b"]

	// The investigator, added through the command line as an operator does.
	inv := newInvestigator(t, "Multi")
	pubFile := filepath.Join(dir, "investigator.pub.asc")
	if err := os.WriteFile(pubFile, []byte(inv.pub), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins.server, "-c", srvA.config, "-add-investigator", "Multi", "-pubkey", pubFile).CombinedOutput(); err != nil {
		t.Fatalf("mig-server -add-investigator: %v\n%s", err, out)
	}

	srvA.start(t)
	srvB.start(t)
	clients := map[*msServer]*client.Client{}
	for _, s := range []*msServer{srvA, srvB} {
		var cc client.Config
		cc.API.URL, cc.API.CA, cc.KeySigner = s.api, caFile, inv.signer
		c, err := client.New(cc)
		if err != nil {
			t.Fatalf("client of server %s: %v", s.name, err)
		}
		clients[s] = c
	}

	// The fleet enrolls through server A.
	aclFile, keyringFile := filepath.Join(dir, "acl.json"), filepath.Join(dir, "keyring.asc")
	acl := fmt.Sprintf(`{"default":{"minimumweight":1,"investigators":{"Multi":{"fingerprint":%q,"weight":1}}}}`, inv.fp)
	if err := os.WriteFile(aclFile, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyringFile, []byte(inv.pub), 0o600); err != nil {
		t.Fatal(err)
	}
	fleetProc := startTail(t, "mig-fleet", []string{"MIG_FLEET_TOKEN=" + token}, fleetBin,
		"-server", srvA.api, "-ca", caFile, "-keyring", keyringFile, "-acl", aclFile,
		"-n", fmt.Sprint(msFleetSize), "-dir", filepath.Join(dir, "fleet"), "-prefix", msPrefix,
		"-heartbeat", "10s", "-loglevel", "warn")

	checker, err := pgstore.Open(ctx, pgURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checker.Close() })
	db, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	fleetTarget := fmt.Sprintf("tags->>'fleet'='%s'", msPrefix)
	fleetExpr, err := target.Parse(fleetTarget + " AND status='online'")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the whole fleet online", func() bool {
		n, err := checker.CountAgents(ctx, fleetExpr)
		return err == nil && n == msFleetSize
	})
	fleetAgents, err := checker.Agents(ctx, store.AgentQuery{Target: fleetExpr})
	if err != nil {
		t.Fatal(err)
	}
	fleetIDs := make([]string, len(fleetAgents))
	for i, a := range fleetAgents {
		fleetIDs[i] = a.ID
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mig-fleet output (tail):\n%s", tail(fleetProc.output(), 40))
		}
	})

	// want is what each action must end with: the agents it targets, and
	// the terminal status each of their commands must reach.
	type want struct {
		name   string
		agents map[string]string // agent ID -> final command status
	}
	wants := map[uint64]*want{}
	var mu sync.Mutex
	fleetWant := func(name string) *want {
		w := &want{name: name, agents: map[string]string{}}
		for _, id := range fleetIDs {
			w.agents[id] = action.CmdSuccess
		}
		return w
	}
	launch := func(s *msServer, name, op string, expire time.Duration, tgt string, w *want) uint64 {
		t.Helper()
		a := &action.Action{Name: name, Target: tgt,
			Operations: []action.Operation{{Module: strings.SplitN(op, " ", 2)[0], Parameters: json.RawMessage(strings.SplitN(op, " ", 2)[1])}}}
		client.PrepareAction(a, expire, time.Now())
		if err := sign.SignAction(a, inv.signer); err != nil {
			t.Fatalf("sign %s: %v", name, err)
		}
		mu.Lock()
		wants[a.ID] = w
		mu.Unlock()
		if _, err := clients[s].CreateAction(ctx, a); err != nil {
			t.Fatalf("launch %s through server %s: %v", name, s.name, err)
		}
		return a.ID
	}
	fileOp := `file {"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"]}}}`
	sleepOp := func(d string) string {
		return `testmodule {"mode":"sleep","duration":"` + d + `","marker":"ms"}`
	}
	doneOf := func(ids ...uint64) int {
		n := 0
		for _, id := range ids {
			if a, err := checker.Action(ctx, id); err == nil {
				n += a.Counters.Done
			}
		}
		return n
	}
	finished := func(ids ...uint64) bool {
		for _, id := range ids {
			a, err := checker.Action(ctx, id)
			if err != nil || (a.Status != action.StatusCompleted && a.Status != action.StatusExpired) {
				return false
			}
		}
		return true
	}

	// 1. Kill server A while it is idle: actions through B, and through A
	// once it is back, run as if nothing happened.
	first := []uint64{
		launch(srvA, "before idle kill via a", fileOp, 5*time.Minute, fleetTarget, fleetWant("before idle kill via a")),
		launch(srvB, "before idle kill via b", fileOp, 5*time.Minute, fleetTarget, fleetWant("before idle kill via b")),
	}
	waitFor(t, 60*time.Second, "the first actions to finish", func() bool { return finished(first...) })
	srvA.kill(t, "idle")
	first = append(first, launch(srvB, "while a is down", fileOp, 5*time.Minute, fleetTarget, fleetWant("while a is down")))
	srvA.start(t)
	first = append(first, launch(srvA, "after a restarted", fileOp, 5*time.Minute, fleetTarget, fleetWant("after a restarted")))

	// 2. Kill server B while results are being ingested: each fleet agent
	// runs one command at a time, so the results of these four actions come
	// back in waves over several seconds, received by both servers.
	var ingest []uint64
	for i := range 4 {
		s := []*msServer{srvA, srvB}[i%2]
		name := fmt.Sprintf("ingest %d via %s", i, s.name)
		ingest = append(ingest, launch(s, name, sleepOp("1500ms"), 5*time.Minute, fleetTarget, fleetWant(name)))
	}
	waitFor(t, 60*time.Second, "some results of the ingest actions stored", func() bool {
		return doneOf(ingest...) >= msFleetSize/2
	})
	stored := doneOf(ingest...)
	srvB.kill(t, fmt.Sprintf("ingesting (%d of %d results stored)", stored, len(ingest)*msFleetSize))
	if stored >= len(ingest)*msFleetSize {
		t.Logf("note: every ingest result was already stored when server B was killed")
	}
	ingest = append(ingest, launch(srvA, "while b is down", sleepOp("200ms"), 5*time.Minute, fleetTarget, fleetWant("while b is down")))
	srvB.start(t)

	// 3. Kill server A in the middle of dispatching an action to the fleet
	// and msPhantoms phantom agents, then start it again.
	phantoms := addPhantoms(t, checker, msPhantoms)
	bigWant := fleetWant("large action")
	for _, id := range phantoms {
		bigWant.agents[id] = action.CmdExpired
	}
	bigTarget := fleetTarget + " OR name LIKE 'phantom-%'"
	// Long enough for another server's sweep to take an interrupted
	// dispatch over (its lease runs out) and for the fleet to answer.
	const bigExpire = 40 * time.Second
	bigID := make(chan uint64, 1)
	launchErr := make(chan error, 1)
	go func() {
		a := &action.Action{Name: "large action", Target: bigTarget,
			Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^hostname$"]}}}`)}}}
		client.PrepareAction(a, bigExpire, time.Now())
		if err := sign.SignAction(a, inv.signer); err != nil {
			launchErr <- err
			return
		}
		mu.Lock()
		wants[a.ID] = bigWant
		mu.Unlock()
		bigID <- a.ID
		_, err := clients[srvA].CreateAction(context.WithoutCancel(ctx), a)
		launchErr <- err
	}()
	big := <-bigID
	total := len(bigWant.agents)
	created := 0
	waitFor(t, 60*time.Second, "the large action's dispatch to start", func() bool {
		created = countCommands(t, db, big)
		return created > 0
	})
	created = countCommands(t, db, big)
	srvA.kill(t, fmt.Sprintf("dispatching (%d of %d commands created)", created, total))
	if created >= total {
		t.Logf("note: the dispatch had created every command when server A was killed")
	}
	if err := <-launchErr; err != nil {
		t.Logf("launching the large action through the killed server: %v (expected)", err)
	}
	srvA.start(t)

	// Every action must finish: the small ones once their results are in,
	// the large one once its phantoms' commands expire.
	all := append(append(first, ingest...), big)
	deadline := time.Now().Add(bigExpire + 25*time.Second)
	for !finished(all...) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if a, err := checker.Action(ctx, big); err == nil {
		t.Logf("large action: %s, counters %+v", a.Status, a.Counters)
	}
	for _, id := range all {
		checkAction(t, checker, db, id, wants[id].name, wants[id].agents)
	}
}

// checkAction checks that an action has finished with exactly one command
// per agent in agents, each in the status agents gives it, results stored
// for the successful ones, and counters that add up.
func checkAction(t *testing.T, checker *pgstore.Store, db *pgxpool.Pool, id uint64, name string, agents map[string]string) {
	t.Helper()
	ctx := t.Context()
	a, err := checker.Action(ctx, id)
	if err != nil {
		t.Errorf("action %q (%d): %v", name, id, err)
		return
	}
	if a.Status != action.StatusCompleted && a.Status != action.StatusExpired {
		t.Errorf("action %q (%d) is stuck %s with counters %+v: %d commands for %d targeted agents",
			name, id, a.Status, a.Counters, countCommands(t, db, id), len(agents))
	}
	c := a.Counters
	if c.Sent != len(agents) || c.Done != c.Sent || c.InFlight != 0 ||
		c.Success+c.Failed+c.TimeOut+c.Expired+c.Cancelled != c.Done {
		t.Errorf("action %q (%d): counters %+v do not add up to %d targeted agents", name, id, c, len(agents))
	}
	rows, err := db.Query(ctx, `SELECT agent_id, count(*), min(status), max(status), min(coalesce(results, '')), max(coalesce(results, ''))
		FROM commands WHERE action_id = $1 GROUP BY agent_id`, int64(id))
	if err != nil {
		t.Fatalf("commands of action %d: %v", id, err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 5 {
			t.Errorf("action %q (%d): "+format, append([]any{name, id}, args...)...)
		}
	}
	for rows.Next() {
		var agentID, status, status2, results, results2 string
		var n int
		if err := rows.Scan(&agentID, &n, &status, &status2, &results, &results2); err != nil {
			t.Fatalf("scan: %v", err)
		}
		seen[agentID] = true
		wantStatus, targeted := agents[agentID]
		switch {
		case !targeted:
			report("command for agent %s, which it does not target", agentID)
		case n != 1:
			report("%d commands for agent %s (statuses %s..%s), want 1", n, agentID, status, status2)
		case status != wantStatus:
			report("agent %s's command is %s, want %s", agentID, status, wantStatus)
		case status == action.CmdSuccess:
			var res []action.Result
			if err := json.Unmarshal([]byte(results), &res); err != nil || len(res) != 1 || !res[0].Success {
				report("agent %s's results %s, want one successful result", agentID, results)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("commands of action %d: %v", id, err)
	}
	missing := 0
	for agentID := range agents {
		if !seen[agentID] {
			missing++
		}
	}
	if missing > 0 {
		report("%d of %d targeted agents have no command", missing, len(agents))
	}
	if bad > 5 {
		t.Errorf("action %q (%d): %d problems in all", name, id, bad)
	}
}

func countCommands(t *testing.T, db *pgxpool.Pool, actionID uint64) int {
	t.Helper()
	var n int
	if err := db.QueryRow(t.Context(), "SELECT count(*) FROM commands WHERE action_id = $1", int64(actionID)).Scan(&n); err != nil {
		t.Fatalf("count commands of action %d: %v", actionID, err)
	}
	return n
}

// addPhantoms writes n online agents named phantom-NNNNN into the store:
// no process stands behind them, so commands to them are never answered.
func addPhantoms(t *testing.T, st *pgstore.Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	now := time.Now()
	batch := make([]action.Agent, 0, 1000)
	for i := range n {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		ids[i] = hex.EncodeToString(b[:])
		name := fmt.Sprintf("phantom-%05d", i)
		batch = append(batch, action.Agent{ID: ids[i], Name: name, QueueLoc: "linux." + name, Mode: action.ModeDaemon,
			Version: "phantom", PID: 1, Status: action.AgentOnline, HeartbeatTime: now, StartTime: now,
			Environment: action.Environment{OS: "linux", Arch: "amd64"}})
		if len(batch) == cap(batch) || i == n-1 {
			if err := st.UpsertAgents(t.Context(), batch); err != nil {
				t.Fatalf("add phantom agents: %v", err)
			}
			batch = batch[:0]
		}
	}
	return ids
}

// msServer is one mig-server process of the test, started again after each
// kill with the same configuration and address.
type msServer struct {
	name, config, api string
	p                 *proc
}

func (s *msServer) start(t *testing.T) {
	t.Helper()
	s.p = startTail(t, "mig-server "+s.name, nil, bins.server, "-c", s.config)
	p := s.p
	waitFor(t, 30*time.Second, "mig-server "+s.name+" to start", func() bool {
		select {
		case <-p.done:
			t.Fatalf("mig-server %s exited:\n%s", s.name, tail(p.output(), 40))
		default:
		}
		return strings.Contains(p.output(), "mig-server started")
	})
}

// kill sends SIGKILL: nothing is flushed, closed or acknowledged.
func (s *msServer) kill(t *testing.T, when string) {
	t.Helper()
	s.p.kill()
	t.Logf("server %s killed while %s", s.name, when)
}

// startTail starts a background process like start, but shows only the tail
// of its output, without the relay's per-message warnings about agents
// without a queue (the phantoms), when the test fails.
func startTail(t *testing.T, label string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s (tail):\n%s", label, tail(p.output(), 60))
		}
	})
	return p
}

// tail returns the last n lines of out, leaving out the relay's warnings
// about messages to agents without a queue.
func tail(out string, n int) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "without a queue") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// buildTestFleet builds mig-fleet with the test module (testdata/migfleet).
func buildTestFleet(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(bins.dir, "mig-fleet-test")
	if _, err := os.Stat(exe); err == nil {
		return exe
	}
	out, err := exec.Command("go", "build", "-tags", "migtest", "-o", exe, "./testdata/migfleet").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./testdata/migfleet: %v\n%s", err, out)
	}
	return exe
}

// rabbitVHost makes a fresh RabbitMQ virtual host on the broker named by
// MIG_TEST_AMQP_URL, with that URL's user allowed everything in it, and
// returns the relay URL of that virtual host and the management API's URL.
// When the test ends it deletes the users the servers created in it (one
// per enrolled agent) and the virtual host with its queues. Without the
// variable the test is skipped, or fails when MIG_TEST_REQUIRE_SERVICES=1.
func rabbitVHost(t *testing.T) (amqpURL, mgmtURL string) {
	t.Helper()
	raw := os.Getenv("MIG_TEST_AMQP_URL")
	if raw == "" {
		if os.Getenv(pgtest.EnvRequire) == "1" {
			t.Fatalf("MIG_TEST_AMQP_URL is not set and %s=1: RabbitMQ is required", pgtest.EnvRequire)
		}
		t.Skip("MIG_TEST_AMQP_URL is not set: no RabbitMQ to test against")
	}
	amqptest.Shared(t) // no broker restart by another package's test meanwhile
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("MIG_TEST_AMQP_URL: %v", err)
	}
	mgmt := url.URL{Scheme: "http", User: u.User, Host: net.JoinHostPort(u.Hostname(), "15672")}
	admin := func(method, path string, body, out any) error {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequest(method, mgmt.String()+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("management API %s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("management API %s %s: %s", method, path, resp.Status)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	vhost := "mig-e2e-multi-" + hex.EncodeToString(rnd[:])
	if err := admin(http.MethodPut, "/api/vhosts/"+vhost, map[string]string{}, nil); err != nil {
		if os.Getenv(pgtest.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skipf("RabbitMQ management API unreachable: %v", err)
	}
	t.Cleanup(func() {
		// The broker may be restarting (other tests restart it): retry
		// for a while rather than leave users and a virtual host behind.
		retry := func(f func() error) error {
			var err error
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
				if err = f(); err == nil || time.Now().After(deadline) {
					return err
				}
			}
		}
		var perms []struct {
			User string `json:"user"`
		}
		if err := retry(func() error {
			return admin(http.MethodGet, "/api/vhosts/"+url.PathEscape(vhost)+"/permissions", nil, &perms)
		}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, p := range perms {
			if p.User == u.User.Username() {
				continue
			}
			if err := retry(func() error {
				return admin(http.MethodDelete, "/api/users/"+url.PathEscape(p.User), nil, nil)
			}); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := retry(func() error {
			return admin(http.MethodDelete, "/api/vhosts/"+url.PathEscape(vhost), nil, nil)
		}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := admin(http.MethodPut, "/api/permissions/"+vhost+"/"+url.PathEscape(u.User.Username()),
		map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, nil); err != nil {
		t.Fatal(err)
	}
	relayURL := *u
	relayURL.Path = "/" + vhost
	return relayURL.String(), mgmt.String()
}
