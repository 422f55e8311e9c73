package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/sign"
)

// This file is the test platform: an embedded NATS relay whose
// authentication the test controls, a small HTTPS fake of the server's
// /enroll endpoint (docs/API.md), investigators' keys, and the agent binary
// built with -tags migtest (so that it serves "testmodule").

// waitFor bounds every wait of the integration tests.
const waitFor = 30 * time.Second

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
	agentExe  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mig-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAgent builds cmd/mig-agent with -tags migtest once per test binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		agentExe = filepath.Join(binDir, "mig-agent")
		cmd := exec.Command("go", "build", "-tags", "migtest", "-o", agentExe, "github.com/migplatform/mig/cmd/mig-agent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mig-agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentExe
}

// investigator is a test investigator's key.
type investigator struct {
	signer sign.Signer
	fp     string
	pub    string
}

var (
	keysOnce sync.Once
	keys     map[string]investigator
	keysErr  error
)

// investigators returns alice, bob (in every test keyring) and carol (in
// none).
func investigators(t *testing.T) map[string]investigator {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]investigator{}
		for _, name := range []string{"alice", "bob", "carol"} {
			priv, pub, fp, err := sign.GenerateKey(name, name+"@example.com")
			if err != nil {
				keysErr = err
				return
			}
			s, err := sign.NewKeySigner(priv, nil)
			if err != nil {
				keysErr = err
				return
			}
			keys[name] = investigator{signer: s, fp: fp, pub: string(pub)}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

// keyringData is the agents' keyring: alice and bob.
func keyringData(t *testing.T) string {
	k := investigators(t)
	return k["alice"].pub + k["bob"].pub
}

// aclData returns an ACL where alice and bob weigh 1 each and every module
// needs weight min.
func aclData(t *testing.T, min int) string {
	k := investigators(t)
	return fmt.Sprintf(`{"default":{"minimumweight":%d,"investigators":{`+
		`"alice":{"fingerprint":%q,"weight":1},"bob":{"fingerprint":%q,"weight":1}}}}`,
		min, k["alice"].fp, k["bob"].fp)
}

// platform is the server side the agents under test talk to.
type platform struct {
	t        *testing.T
	token    string
	listen   string
	relay    *natsrelay.Server
	hub      relay.Hub
	enroll   *httptest.Server
	relayTLS *tls.Config
	caFile   string
	stopRecv context.CancelFunc
	recvDone chan struct{}

	mu        sync.Mutex
	passwords map[string]string // agent ID -> relay password
	enrolls   map[string]int
	attempts  int  // enrollment requests, answered or not
	down      bool // answer enrollments 503 Service Unavailable
	noAck     map[string]bool
	results   map[string]chan *action.ResultMessage
	hellos    map[string]chan action.HeartbeatMessage
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	p := &platform{
		t:         t,
		token:     "enroll-secret",
		passwords: map[string]string{},
		enrolls:   map[string]int{},
		noAck:     map[string]bool{},
		results:   map[string]chan *action.ResultMessage{},
		hellos:    map[string]chan action.HeartbeatMessage{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/enroll", p.handleEnroll)
	p.enroll = httptest.NewTLSServer(mux)
	t.Cleanup(p.enroll.Close)
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.enroll.Certificate().Raw})
	if err := os.WriteFile(p.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	// The relay speaks TLS with the same certificate, as mig-server -dev
	// does; enrollment names no relay CA, so agents use the configured CA.
	p.relayTLS = p.enroll.TLS.Clone()
	p.relayTLS.NextProtos = nil

	p.startRelay("127.0.0.1:0")
	t.Cleanup(p.stopRelay)
	return p
}

func (p *platform) relayAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listen
}

func (p *platform) authenticate(agentID, password string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	want, ok := p.passwords[agentID]
	return ok && want == password
}

// startRelay starts the embedded relay on listen and receives from it.
func (p *platform) startRelay(listen string) {
	p.t.Helper()
	srv, err := natsrelay.StartServer(natsrelay.ServerConfig{Listen: listen, TLS: p.relayTLS, Authenticate: p.authenticate})
	if err != nil {
		p.t.Fatalf("StartServer(%s): %v", listen, err)
	}
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		p.t.Fatal(err)
	}
	port := u.Port()
	p.mu.Lock()
	p.relay = srv
	p.listen = "127.0.0.1:" + port
	p.mu.Unlock()
	hub, err := srv.NewHub(p.t.Context())
	if err != nil {
		p.t.Fatalf("NewHub: %v", err)
	}
	p.hub = hub
	ctx, cancel := context.WithCancel(context.Background())
	p.stopRecv = cancel
	p.recvDone = make(chan struct{})
	go func() {
		defer close(p.recvDone)
		_ = hub.Receive(ctx, p.receive)
	}()
}

// stopRelay stops receiving and shuts the relay down.
func (p *platform) stopRelay() {
	p.stopRecv()
	p.hub.Close()
	<-p.recvDone
	p.relay.Shutdown()
}

// restartRelay stops the relay and starts it again on the same address, so
// that agents reconnect.
func (p *platform) restartRelay() {
	p.t.Helper()
	listen := p.listen
	p.stopRelay()
	p.startRelay(listen)
}

func (p *platform) resultChan(id string) chan *action.ResultMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.results[id]
	if !ok {
		c = make(chan *action.ResultMessage, 256)
		p.results[id] = c
	}
	return c
}

func (p *platform) helloChan(id string) chan action.HeartbeatMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.hellos[id]
	if !ok {
		c = make(chan action.HeartbeatMessage, 256)
		p.hellos[id] = c
	}
	return c
}

// receive is the server's handling of what agents publish: results are
// checked, handed to the test and acknowledged (unless noAck); hellos are
// handed to the test.
func (p *platform) receive(in relay.Inbound) {
	switch in.Kind {
	case relay.KindResult:
		m, err := action.DecodeResult(in.Data)
		if err != nil {
			p.t.Errorf("agent %s sent a result that does not decode: %v", in.AgentID, err)
			return
		}
		if m.AgentID != in.AgentID {
			p.t.Errorf("result agent id %q, relay says %q", m.AgentID, in.AgentID)
		}
		// Every result an agent sends is signed by the key its ID names.
		if err := action.VerifyResult(m.Fields(), m.Signature); err != nil {
			p.t.Errorf("agent %s sent a result that does not verify: %v", in.AgentID, err)
		}
		select {
		case p.resultChan(in.AgentID) <- m:
		default:
		}
		p.mu.Lock()
		noAck := p.noAck[in.AgentID]
		p.mu.Unlock()
		if !noAck {
			p.ack(in.AgentID, m.CommandID)
		}
	case relay.KindHeartbeat:
		m, err := action.DecodeHeartbeat(in.Data)
		if err != nil {
			p.t.Errorf("agent %s sent a heartbeat that does not decode: %v", in.AgentID, err)
			return
		}
		if m.Hello {
			select {
			case p.helloChan(in.AgentID) <- *m:
			default:
			}
		}
	}
}

// ack acknowledges results to an agent.
func (p *platform) ack(agentID string, ids ...uint64) {
	data, err := action.Marshal(action.AckMessage{V: action.ProtocolVersion, CommandIDs: ids})
	if err != nil {
		p.t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.hub.Send(ctx, []relay.Outbound{{AgentID: agentID, Kind: relay.KindAck, Data: data}}); err != nil {
		// A result that arrives while the test is tearing the relay down
		// cannot be acknowledged, and need not be: the test is over.
		if errors.Is(err, relay.ErrClosed) {
			return
		}
		p.t.Errorf("sending ack to %s: %v", agentID, err)
	}
}

// handleEnroll is a fake of POST /api/v1/enroll as docs/API.md describes it.
func (p *platform) handleEnroll(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
	}
	p.mu.Lock()
	p.attempts++
	down := p.down
	p.mu.Unlock()
	if down {
		fail(http.StatusServiceUnavailable, "internal", "down for maintenance")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+p.token {
		fail(http.StatusUnauthorized, "unauthenticated", "bad enrollment token")
		return
	}
	var req struct {
		PublicKey string       `json:"publickey"`
		Time      string       `json:"time"`
		Proof     string       `json:"proof"`
		Agent     action.Agent `json:"agent"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		fail(http.StatusBadRequest, "bad_request", "bad public key")
		return
	}
	sum := sha256.Sum256(pub)
	id := hex.EncodeToString(sum[:16])
	ts, err := time.Parse(time.RFC3339, req.Time)
	if err != nil || time.Since(ts).Abs() > 5*time.Minute {
		fail(http.StatusBadRequest, "bad_request", "bad time")
		return
	}
	proof, err := base64.StdEncoding.DecodeString(req.Proof)
	if err != nil || !ed25519.Verify(pub, []byte("mig-enroll-v1\n"+id+"\n"+req.Time), proof) {
		fail(http.StatusUnauthorized, "unauthenticated", "bad proof")
		return
	}
	if req.Agent.ID != id {
		fail(http.StatusBadRequest, "bad_request", "agent id does not match the key")
		return
	}
	pw, err := relay.NewPassword()
	if err != nil {
		fail(http.StatusInternalServerError, "internal", err.Error())
		return
	}
	p.mu.Lock()
	p.passwords[id] = pw
	p.enrolls[id]++
	p.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{
		"agentid": id,
		"relay":   relay.Credentials{URL: "tls://" + p.relayAddr(), User: id, Password: pw},
	})
}

func (p *platform) enrollCount(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enrolls[id]
}

// send sends a command for act to an agent.
func (p *platform) send(t *testing.T, agentID string, cmdID uint64, act *action.Action) {
	t.Helper()
	p.sendRaw(t, agentID, commandBytes(t, agentID, cmdID, act))
}

func (p *platform) sendRaw(t *testing.T, agentID string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.hub.Send(ctx, []relay.Outbound{{AgentID: agentID, Kind: relay.KindCommand, Data: data}}); err != nil {
		t.Fatalf("sending command to %s: %v", agentID, err)
	}
}

func commandBytes(t *testing.T, agentID string, cmdID uint64, act *action.Action) []byte {
	t.Helper()
	data, err := action.Marshal(action.CommandMessage{V: action.ProtocolVersion, Command: action.Command{
		ID: cmdID, Action: *act, AgentID: agentID, Status: action.CmdSent,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// result waits for the next result of an agent.
func (p *platform) result(t *testing.T, agentID string) *action.ResultMessage {
	t.Helper()
	select {
	case m := <-p.resultChan(agentID):
		return m
	case <-time.After(waitFor):
		t.Fatalf("no result from agent %s within %s", agentID, waitFor)
		return nil
	}
}

// resultsFor waits for the results of the given commands, in any order,
// skipping repeats.
func (p *platform) resultsFor(t *testing.T, agentID string, ids ...uint64) map[uint64]*action.ResultMessage {
	t.Helper()
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[uint64]*action.ResultMessage{}
	for len(got) < len(want) {
		m := p.result(t, agentID)
		if want[m.CommandID] {
			got[m.CommandID] = m
		}
	}
	return got
}

// hello waits for an agent's next hello.
func (p *platform) hello(t *testing.T, agentID string) action.HeartbeatMessage {
	t.Helper()
	select {
	case m := <-p.helloChan(agentID):
		return m
	case <-time.After(waitFor):
		t.Fatalf("no hello from agent %s within %s", agentID, waitFor)
		return action.HeartbeatMessage{}
	}
}

// agentProc is an agent under test, run as the real binary.
type agentProc struct {
	t       *testing.T
	p       *platform
	exe     string
	dir     string // state directory
	cfgPath string
	id      string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// agentOpts are the per-agent settings of a test.
type agentOpts struct {
	acl           string
	moduleTimeout string
	tags          map[string]string
	name          string
}

// newAgent writes an agent's identity and configuration and starts it.
func (p *platform) newAgent(t *testing.T, o agentOpts) *agentProc {
	t.Helper()
	exe := buildAgent(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// The identity is made here, so the test knows the agent ID; the agent
	// loads it.
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(filepath.Join(state, "agent.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.acl == "" {
		o.acl = aclData(t, 1)
	}
	if o.moduleTimeout == "" {
		o.moduleTimeout = "20s"
	}
	if o.name == "" {
		o.name = "agent-" + t.Name()
	}
	cfg := map[string]any{
		"server":          p.enroll.URL + "/api/v1",
		"ca":              p.caFile,
		"enrollmenttoken": p.token,
		"statedir":        state,
		"keyringdata":     keyringData(t),
		"acldata":         json.RawMessage(o.acl),
		"tags":            o.tags,
		"heartbeat":       "1s", // the agent enrolls again after 3 heartbeats without a connection
		"moduletimeout":   o.moduleTimeout,
		"maxprocs":        1,
		"name":            o.name,
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{
		t: t, p: p, exe: exe, dir: state, id: action.AgentID(pub),
		cfgPath: filepath.Join(dir, "agent.json"), logPath: filepath.Join(dir, "agent.log"),
	}
	if err := os.WriteFile(a.cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			if b, err := os.ReadFile(a.logPath); err == nil {
				if len(b) > 16<<10 {
					b = append(append(b[:6<<10:6<<10], "\n...\n"...), lastBytes(b, 8<<10)...)
				}
				t.Logf("agent %s log:\n%s", a.id, b)
			}
		}
	})
	a.start()
	return a
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// start runs the agent process and waits for its hello.
func (a *agentProc) start() action.HeartbeatMessage {
	a.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	a.cmd = exec.Command(a.exe, "-c", a.cfgPath)
	a.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + a.dir}
	a.cmd.Stdout = logf
	a.cmd.Stderr = logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		a.t.Fatal(err)
	}
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		defer logf.Close()
		_ = a.cmd.Wait()
	}()
	return a.p.hello(a.t, a.id)
}

// stop ends the agent with SIGTERM (SIGKILL if it does not stop).
func (a *agentProc) stop() {
	a.signal(syscall.SIGTERM)
}

// kill ends the agent at once, as a crash would.
func (a *agentProc) kill() {
	a.signal(syscall.SIGKILL)
}

func (a *agentProc) signal(sig syscall.Signal) {
	if a.cmd == nil || a.done == nil {
		return
	}
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.t.Errorf("agent %s did not stop on %v", a.id, sig)
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

var nextID atomic.Uint64

func init() { nextID.Store(uint64(time.Now().UnixNano() / 1000)) }

// newID returns a fresh action or command ID.
func newID() uint64 { return nextID.Add(1) }

// testOp returns a testmodule operation.
func testOp(mode string, extra ...string) action.Operation {
	params := map[string]string{"mode": mode}
	for i := 0; i+1 < len(extra); i += 2 {
		params[extra[i]] = extra[i+1]
	}
	raw, _ := json.Marshal(params)
	return action.Operation{Module: "testmodule", Parameters: raw}
}

// newAction returns an unsigned action valid from a minute ago for ten
// minutes.
func newAction(target string, ops ...action.Operation) *action.Action {
	now := time.Now().UTC().Truncate(time.Second)
	return &action.Action{
		ID: newID(), Name: "agent test", Target: target,
		ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(10 * time.Minute),
		Operations: ops, SyntaxVersion: action.SyntaxVersion,
	}
}

// signed signs act with the named investigators and returns it.
func signed(t *testing.T, act *action.Action, names ...string) *action.Action {
	t.Helper()
	k := investigators(t)
	for _, n := range names {
		if err := sign.SignAction(act, k[n].signer); err != nil {
			t.Fatalf("signing by %s: %v", n, err)
		}
	}
	return act
}

// waitUntil polls cond until it holds or waitFor passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
