package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/relay"
)

// EnrollProofPrefix starts the bytes an agent signs to prove it holds its key
// when it enrolls: prefix + agentid + "\n" + time (see docs/API.md).
const EnrollProofPrefix = "mig-enroll-v1\n"

// Errors of enrollment.
var (
	// ErrEnroll is wrapped by every enrollment failure.
	ErrEnroll = errors.New("enrollment failed")
	// ErrEnrollRefused means the server answered but refused the agent
	// (bad enrollment token, bad proof); retrying as is will not help until
	// an operator fixes the configuration, but the agent keeps trying.
	ErrEnrollRefused = errors.New("enrollment refused")
)

// maxEnrollResponse bounds the server's answer to an enrollment.
const maxEnrollResponse = 1 << 20

// loadIdentity reads the agent's key from stateDir/agent.key, making one on
// first start. A key file that does not parse is moved aside and replaced:
// the agent then has a new identity and enrolls again.
func loadIdentity(stateDir string, log *slog.Logger) (ed25519.PrivateKey, error) {
	path := filepath.Join(stateDir, "agent.key")
	data, err := readFileLimited(path, 64<<10)
	switch {
	case err == nil:
		key, perr := parseKey(data)
		if perr == nil {
			return key, nil
		}
		moveAside(stateDir, path, perr, log)
	case !errors.Is(err, os.ErrNotExist):
		moveAside(stateDir, path, err, log)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make agent key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("save agent key: %w", err)
	}
	log.Info("made a new agent identity", "agentid", action.AgentID(key.Public().(ed25519.PublicKey)), "file", path)
	return key, nil
}

// parseKey decodes a PKCS#8 PEM Ed25519 private key.
func parseKey(data []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: agent key is not a PEM PRIVATE KEY", ErrCorrupt)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: agent key: %v", ErrCorrupt, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: agent key is a %T, not Ed25519", ErrCorrupt, k)
	}
	return key, nil
}

// credentialsFile is the on-disk shape of relay.json and the server's answer
// to an enrollment.
type credentialsFile struct {
	AgentID string            `json:"agentid"`
	Relay   relay.Credentials `json:"relay"`
}

// parseCredentials decodes relay.json or an enrollment answer and checks it
// is for agentID.
func parseCredentials(data []byte, agentID string) (relay.Credentials, error) {
	var f credentialsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: credentials: %v", ErrCorrupt, err)
	}
	if f.AgentID != agentID {
		return relay.Credentials{}, fmt.Errorf("%w: credentials are for agent %q, not %q", ErrCorrupt, f.AgentID, agentID)
	}
	if f.Relay.URL == "" {
		return relay.Credentials{}, fmt.Errorf("%w: credentials have no relay url", ErrCorrupt)
	}
	return f.Relay, nil
}

// credPath is where the relay credentials are kept.
func credPath(stateDir string) string { return filepath.Join(stateDir, "relay.json") }

// loadCredentials returns the kept relay credentials, or false if there are
// none (a corrupt file is moved aside).
func loadCredentials(stateDir, agentID string, log *slog.Logger) (relay.Credentials, bool) {
	path := credPath(stateDir)
	data, err := readFileLimited(path, maxEnrollResponse)
	if errors.Is(err, os.ErrNotExist) {
		return relay.Credentials{}, false
	}
	if err == nil {
		var c relay.Credentials
		c, err = parseCredentials(data, agentID)
		if err == nil {
			return c, true
		}
	}
	moveAside(stateDir, path, err, log)
	return relay.Credentials{}, false
}

// saveCredentials keeps relay credentials for agentID.
func saveCredentials(stateDir, agentID string, c relay.Credentials) error {
	data, err := json.Marshal(credentialsFile{AgentID: agentID, Relay: c})
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	return atomicfile.Write(credPath(stateDir), data, 0o600)
}

// enrollRequest is the body of POST /enroll.
type enrollRequest struct {
	PublicKey string       `json:"publickey"`
	Time      string       `json:"time"`
	Proof     string       `json:"proof"`
	Agent     action.Agent `json:"agent"`
}

// enrollProof returns the bytes an agent signs to enroll.
func enrollProof(agentID, t string) []byte {
	return []byte(EnrollProofPrefix + agentID + "\n" + t)
}

// httpClient returns a client that trusts the configured CA (or the system
// roots when there is none).
func httpClient(caPEM []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%w: ca holds no PEM certificate", ErrConfig)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// enroll asks the server for relay credentials once.
func (a *Agent) enroll(ctx context.Context) (relay.Credentials, error) {
	now := time.Now().UTC().Format(time.RFC3339)
	pub := a.key.Public().(ed25519.PublicKey)
	body, err := json.Marshal(enrollRequest{
		PublicKey: base64.StdEncoding.EncodeToString(pub),
		Time:      now,
		Proof:     base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, enrollProof(a.id, now))),
		Agent:     a.self(time.Now()),
	})
	if err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: encode request: %v", ErrEnroll, err)
	}
	u := strings.TrimSuffix(a.cfg.Server, "/") + "/enroll"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: %s: %v", ErrEnroll, u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.cfg.EnrollmentToken)
	resp, err := a.http.Do(req)
	if err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: %v", ErrEnroll, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxEnrollResponse+1))
	if err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: read answer from %s: %v", ErrEnroll, u, err)
	}
	if len(data) > maxEnrollResponse {
		return relay.Credentials{}, fmt.Errorf("%w: answer from %s is over %d bytes", ErrEnroll, u, maxEnrollResponse)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		_ = json.Unmarshal(data, &e)
		err := ErrEnroll
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			err = ErrEnrollRefused
		}
		return relay.Credentials{}, fmt.Errorf("%w: %s answered %s: %s (%s)", err, u, resp.Status, e.Error, e.Code)
	}
	c, err := parseCredentials(data, a.id)
	if err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: answer from %s: %v", ErrEnroll, u, err)
	}
	if err := saveCredentials(a.cfg.StateDir, a.id, c); err != nil {
		return relay.Credentials{}, fmt.Errorf("%w: %v", ErrEnroll, err)
	}
	return c, nil
}

// credentials returns kept relay credentials, or enrolls until it gets new
// ones, retrying with backoff while the server cannot be reached or refuses.
// It returns only ctx's error.
func (a *Agent) credentials(ctx context.Context) (relay.Credentials, error) {
	if c, ok := loadCredentials(a.cfg.StateDir, a.id, a.log); ok {
		return a.withCA(c), nil
	}
	b := newBackoff(a.enrollMin, a.enrollMax)
	for {
		c, err := a.enroll(ctx)
		if err == nil {
			a.log.Info("enrolled", "agentid", a.id, "relay", c.URL)
			return a.withCA(c), nil
		}
		if ctx.Err() != nil {
			return relay.Credentials{}, ctx.Err()
		}
		wait := b.next()
		a.log.Warn("cannot enroll; will retry", "server", a.cfg.Server, "retry_in", wait, "err", err)
		if !sleepCtx(ctx, wait) {
			return relay.Credentials{}, ctx.Err()
		}
	}
}

// forgetCredentials drops the kept relay credentials, so that the next
// connection enrolls again.
func (a *Agent) forgetCredentials() {
	if err := atomicfile.Remove(credPath(a.cfg.StateDir)); err != nil {
		a.log.Error("cannot remove relay credentials", "err", err)
	}
}

// withCA fills in the relay CA from the configuration when enrollment gave
// none for a TLS relay (tls:// URL). A plain nats:// URL is left alone: a CA
// would make the connection require TLS.
func (a *Agent) withCA(c relay.Credentials) relay.Credentials {
	if c.CA == "" && len(a.caPEM) > 0 && strings.HasPrefix(strings.ToLower(c.URL), "tls://") {
		c.CA = string(a.caPEM)
	}
	return c
}

// backoff yields exponentially growing waits with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

// next returns the next wait: doubling from min up to max, with up to 25%
// random jitter so that a fleet does not retry in step.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	var r [1]byte
	_, _ = rand.Read(r[:])
	return b.cur + b.cur*time.Duration(r[0])/1024
}

// reset starts the backoff over.
func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d or until ctx ends, and reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
