// Package client is the Go client of the MIG server API (docs/API.md), used
// by the mig command line and by anything else that drives investigations.
//
// A Client authenticates every request with a short-lived token signed by the
// investigator's own OpenPGP key (the "Authorization: MIG-PGP" scheme); the
// private key never leaves the investigator's machine. When the configuration
// holds an API key, requests are authenticated with it instead
// ("Authorization: MIG-APIKEY"); actions are still signed with the OpenPGP
// key, which an API key never replaces. Actions are prepared
// (PrepareAction) and signed (sign.SignAction) on the client before they are
// sent, and Follow watches a launched action until every agent has answered.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/secfile"
	"github.com/migplatform/mig/internal/sign"
)

// Timeouts and limits of the HTTP client.
const (
	// RequestTimeout bounds one API request, from dial to the end of the body.
	RequestTimeout = 2 * time.Minute
	// MaxResponseSize bounds an API response body.
	MaxResponseSize = 256 << 20
	// MaxErrorSize bounds how much of an error response is read.
	MaxErrorSize = 64 << 10
)

// AuthScheme is the Authorization scheme of investigators' tokens.
const AuthScheme = "MIG-PGP"

// APIKeyScheme is the Authorization scheme of API keys.
const APIKeyScheme = "MIG-APIKEY"

// ErrBadResponse is wrapped when the server answers something the client
// cannot read.
var ErrBadResponse = errors.New("bad response from the MIG API")

// APIError is an error answered by the API: its HTTP status, its stable code
// (docs/API.md) and the server's message, unchanged.
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error returns the server's message with the status and code.
func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(e.Status), " ", "_"))
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, code, e.Message)
}

// Client talks to one MIG API as one investigator. It is safe for
// concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	// longHTTP has no timeout of its own (rawBody.long).
	longHTTP *http.Client
	signer   sign.Signer
	apiKey   string
	log      *slog.Logger
	now      func() time.Time
}

// New returns a client for cfg: TLS verified against cfg.API.CA (or the
// system roots), request timeouts, and the signer cfg names (cfg.KeySigner
// if set). It reads the CA and key files but makes no request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := parseAPIURL(cfg.API.URL)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.API.CA != "" {
		if err := secfile.Check(cfg.API.CA, secfile.Rule{What: "api.ca", Kind: secfile.Public}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		pem, err := os.ReadFile(cfg.API.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: api.ca: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: api.ca %s holds no PEM certificate", ErrConfig, cfg.API.CA)
		}
		tlsConf.RootCAs = pool
	}
	s := cfg.KeySigner
	if s == nil && cfg.APIKey != "" && cfg.Signer == (SignerConfig{}) {
		s = noSigner{}
	}
	if s == nil {
		s, err = newSigner(cfg.Signer)
		if err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	return &Client{
		base:     base,
		http:     &http.Client{Transport: tr, Timeout: RequestTimeout},
		longHTTP: &http.Client{Transport: tr},
		signer:   s,
		apiKey:   cfg.APIKey,
		log:      log.With("component", "client"),
		now:      time.Now,
	}, nil
}

func newSigner(sc SignerConfig) (sign.Signer, error) {
	switch {
	case sc.KeyFile != "":
		if err := secfile.Check(sc.KeyFile, secfile.Rule{What: "signer.keyfile", Kind: secfile.Secret,
			Otherwise: "treat the key as leaked: make a new one and have this one disabled on the server and removed from agents' keyrings"}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		key, err := os.ReadFile(sc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: signer.keyfile: %w", ErrConfig, err)
		}
		s, err := sign.NewKeySigner(key, []byte(sc.Passphrase))
		if err != nil {
			return nil, fmt.Errorf("%w: signer.keyfile %s: %w", ErrConfig, sc.KeyFile, err)
		}
		return s, nil
	case sc.KeyID != "":
		gpg := sc.GPG
		if gpg == "" {
			gpg = "gpg"
		}
		s, err := sign.NewGPGSigner(gpg, sc.GPGHome, sc.KeyID)
		if err != nil {
			return nil, fmt.Errorf("%w: signer.keyid %s: %w", ErrConfig, sc.KeyID, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: no signer: set signer.keyfile or signer.keyid", ErrConfig)
}

// Signer returns the investigator's signer, to sign actions before they are
// created.
func (c *Client) Signer() sign.Signer { return c.signer }

// authToken makes a new token for one request: the server refuses a token
// it has seen before (docs/API.md), so tokens are never reused, not even
// by the requests of Follow.
func (c *Client) authToken() (string, error) {
	tok, err := sign.MakeToken(c.signer, c.now())
	if err != nil {
		return "", fmt.Errorf("making an API token with key %s: %w", c.signer.Fingerprint(), err)
	}
	return tok, nil
}

// do sends one request and decodes a successful JSON answer into out (if
// not nil). Answers with an error status become *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any, auth bool) error {
	u := *c.base
	u.Path = c.base.Path + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	var size int64 = -1
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, size, contentType = b.r, b.size, b.contentType
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request to %s: %w", path, err)
		}
		rd, size = bytes.NewReader(data), int64(len(data))
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mig-client")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
		req.ContentLength = size
	}
	if auth && c.apiKey != "" {
		req.Header.Set("Authorization", APIKeyScheme+" "+c.apiKey)
	} else if auth {
		tok, err := c.authToken()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", AuthScheme+" "+tok)
	}
	start := time.Now()
	hc := c.http
	if rb, ok := body.(rawBody); ok && rb.long {
		hc = c.longHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	c.log.Debug("api request", "method", method, "url", u.String(), "status", resp.StatusCode,
		"duration", time.Since(start))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxErrorSize))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(data) > MaxResponseSize {
		return fmt.Errorf("%w: %s %s: answer larger than %d bytes", ErrBadResponse, method, path, MaxResponseSize)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBadResponse, method, path, err)
	}
	return nil
}

// rawBody is a request body sent as it is, not encoded as JSON: a file
// upload or a document whose bytes are what was signed.
type rawBody struct {
	r           io.Reader
	size        int64
	contentType string
	// long sends it without RequestTimeout: the caller's context bounds
	// a request that may take longer (an upload of hundreds of MiB).
	long bool
}

func readAPIError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorSize))
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(data, &e); err != nil || (e.Error == "" && e.Code == "") {
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &APIError{Status: resp.StatusCode, Message: msg}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
}

// Health is the server's answer to GET /health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Health asks whether the server is up; it needs no authentication.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/health", nil, nil, &h, false)
	return h, err
}

// CreateAction sends a signed action and returns it as stored, with its
// status and counters.
func (c *Client) CreateAction(ctx context.Context, a *action.Action) (*action.Action, error) {
	var out action.Action
	if err := c.do(ctx, http.MethodPost, "/actions", nil, a, &out, true); err != nil {
		return nil, fmt.Errorf("creating action %d: %w", a.ID, err)
	}
	return &out, nil
}

// Action returns one action with its status and exact counters.
func (c *Client) Action(ctx context.Context, id uint64) (*action.Action, error) {
	var out action.Action
	if err := c.do(ctx, http.MethodGet, "/actions/"+strconv.FormatUint(id, 10), nil, nil, &out, true); err != nil {
		return nil, fmt.Errorf("getting action %d: %w", id, err)
	}
	return &out, nil
}

// Actions lists actions, newest first. A zero limit lets the server choose.
func (c *Client) Actions(ctx context.Context, limit, offset int) ([]action.Action, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	var out struct {
		Actions []action.Action `json:"actions"`
	}
	if err := c.do(ctx, http.MethodGet, "/actions", q, nil, &out, true); err != nil {
		return nil, fmt.Errorf("listing actions: %w", err)
	}
	return out.Actions, nil
}

// CommandsQuery selects one page of an action's commands. Zero fields do not
// filter.
type CommandsQuery struct {
	Status    string // only commands in this status
	Found     bool   // only commands whose results found something
	After     uint64 // only commands with an ID above After (the paging cursor)
	Limit     int    // page size; 0 lets the server choose
	NoResults bool   // leave the results out
}

// CommandsPage is one page of commands, ordered by ID. Next is the After of
// the following page, or 0 on the last page.
type CommandsPage struct {
	Commands []action.Command `json:"commands"`
	Next     uint64           `json:"next"`
}

// Commands returns one page of an action's commands.
func (c *Client) Commands(ctx context.Context, actionID uint64, q CommandsQuery) (CommandsPage, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Found {
		v.Set("found", "true")
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.NoResults {
		v.Set("results", "false")
	}
	var page CommandsPage
	path := "/actions/" + strconv.FormatUint(actionID, 10) + "/commands"
	if err := c.do(ctx, http.MethodGet, path, v, nil, &page, true); err != nil {
		return CommandsPage{}, fmt.Errorf("listing commands of action %d: %w", actionID, err)
	}
	if page.Next != 0 && q.After != 0 && page.Next <= q.After {
		return CommandsPage{}, fmt.Errorf("%w: commands of action %d: next cursor %d does not move past %d",
			ErrBadResponse, actionID, page.Next, q.After)
	}
	return page, nil
}

// Command returns one command with its results.
func (c *Client) Command(ctx context.Context, id uint64) (*action.Command, error) {
	var out action.Command
	if err := c.do(ctx, http.MethodGet, "/commands/"+strconv.FormatUint(id, 10), nil, nil, &out, true); err != nil {
		return nil, fmt.Errorf("getting command %d: %w", id, err)
	}
	return &out, nil
}

// AgentsPage is one page of agents, ordered by ID. Next is the after of the
// following page, or empty on the last page.
type AgentsPage struct {
	Agents []action.Agent `json:"agents"`
	Next   string         `json:"next"`
}

// Agents returns one page of the agents matching target (empty: every
// agent), with IDs above after.
func (c *Client) Agents(ctx context.Context, target string, limit int, after string) (AgentsPage, error) {
	q := url.Values{}
	if target != "" {
		q.Set("target", target)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	var page AgentsPage
	if err := c.do(ctx, http.MethodGet, "/agents", q, nil, &page, true); err != nil {
		return AgentsPage{}, fmt.Errorf("listing agents: %w", err)
	}
	if page.Next != "" && after != "" && page.Next <= after {
		return AgentsPage{}, fmt.Errorf("%w: agents: next cursor %q does not move past %q",
			ErrBadResponse, page.Next, after)
	}
	return page, nil
}

// CountAgents returns how many agents match target: the preview of an
// action's reach.
func (c *Client) CountAgents(ctx context.Context, target string) (int, error) {
	q := url.Values{}
	if target != "" {
		q.Set("target", target)
	}
	var out struct {
		Count *int `json:"count"`
	}
	if err := c.do(ctx, http.MethodGet, "/agents/count", q, nil, &out, true); err != nil {
		return 0, fmt.Errorf("counting agents for target %q: %w", target, err)
	}
	if out.Count == nil {
		return 0, fmt.Errorf("%w: agents/count answer has no count", ErrBadResponse)
	}
	return *out.Count, nil
}

// AgentCounts counts agents by status.
type AgentCounts struct {
	Online  int `json:"online"`
	Idle    int `json:"idle"`
	Offline int `json:"offline"`
}

// Dashboard is the server's overview: agents by status and the newest
// actions.
type Dashboard struct {
	Agents  AgentCounts     `json:"agents"`
	Actions []action.Action `json:"actions"`
}

// Dashboard returns the overview of agents and recent actions.
func (c *Client) Dashboard(ctx context.Context) (Dashboard, error) {
	var d Dashboard
	if err := c.do(ctx, http.MethodGet, "/dashboard", nil, nil, &d, true); err != nil {
		return Dashboard{}, fmt.Errorf("getting the dashboard: %w", err)
	}
	return d, nil
}

// Investigators lists the investigators.
func (c *Client) Investigators(ctx context.Context) ([]action.Investigator, error) {
	var out struct {
		Investigators []action.Investigator `json:"investigators"`
	}
	if err := c.do(ctx, http.MethodGet, "/investigators", nil, nil, &out, true); err != nil {
		return nil, fmt.Errorf("listing investigators: %w", err)
	}
	return out.Investigators, nil
}

// CreateInvestigator adds an investigator known by an armored OpenPGP public
// key, with permissions (see docs/API.md).
func (c *Client) CreateInvestigator(ctx context.Context, name, publicKey string, permissions []string) (*action.Investigator, error) {
	body := struct {
		Name        string   `json:"name"`
		PublicKey   string   `json:"publickey"`
		Permissions []string `json:"permissions,omitempty"`
	}{name, publicKey, permissions}
	var out action.Investigator
	if err := c.do(ctx, http.MethodPost, "/investigators", nil, body, &out, true); err != nil {
		return nil, fmt.Errorf("creating investigator %q: %w", name, err)
	}
	return &out, nil
}

// SetInvestigatorStatus activates or disables an investigator
// (action.InvestigatorActive or action.InvestigatorDisabled).
func (c *Client) SetInvestigatorStatus(ctx context.Context, id int64, status string) error {
	if status != action.InvestigatorActive && status != action.InvestigatorDisabled {
		return fmt.Errorf("investigator status %q: want %q or %q", status,
			action.InvestigatorActive, action.InvestigatorDisabled)
	}
	body := struct {
		Status string `json:"status"`
	}{status}
	path := "/investigators/" + strconv.FormatInt(id, 10) + "/status"
	if err := c.do(ctx, http.MethodPost, path, nil, body, nil, true); err != nil {
		return fmt.Errorf("setting investigator %d %s: %w", id, status, err)
	}
	return nil
}

// ClockSkew is how far before now PrepareAction starts an action's validity,
// so that agents whose clocks are a little behind still accept it.
const ClockSkew = 10 * time.Second

// DefaultExpiration is the validity PrepareAction gives when expire is not
// positive.
const DefaultExpiration = 300 * time.Second

// maxJSONSafeID is the largest ID that survives a round trip through a
// float64 (JSON numbers in most languages): 2^53-1.
const maxJSONSafeID = 1<<53 - 1

// NewActionID returns a random action ID in [1, 2^53-1], from crypto/rand.
func NewActionID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails; see crypto/rand.Read
		if id := binary.BigEndian.Uint64(b[:]) & maxJSONSafeID; id != 0 {
			return id
		}
	}
}

// PrepareAction fills what an action needs before it is signed, leaving set
// fields alone: a random ID (NewActionID), validfrom now minus ClockSkew,
// expireafter now plus expire (DefaultExpiration when expire is not
// positive), and syntax version 2 when none is set.
func PrepareAction(a *action.Action, expire time.Duration, now time.Time) {
	if a.ID == 0 {
		a.ID = NewActionID()
	}
	if a.ValidFrom.IsZero() {
		a.ValidFrom = now.Add(-ClockSkew).UTC()
	}
	if expire <= 0 {
		expire = DefaultExpiration
	}
	if a.ExpireAfter.IsZero() {
		// The expiration counts from now, as MIG's -e did: validfrom is
		// moved back only to absorb agents' clock skew.
		a.ExpireAfter = now.Add(expire).UTC()
	}
	if a.SyntaxVersion == 0 {
		a.SyntaxVersion = action.SyntaxVersion
	}
}
