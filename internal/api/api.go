// Package api serves MIG's HTTP API (docs/API.md): investigators launch
// signed actions and read results; agents enroll. Every endpoint but health
// and enroll authenticates an investigator with a token signed by their
// OpenPGP key, or with one of their API keys (apikey.go), and checks one
// permission; all errors are mapped to an HTTP
// status in one place (writeError).
package api

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/strictjson"
	"github.com/migplatform/mig/internal/target"
	"github.com/migplatform/mig/internal/version"
)

// Permissions an investigator may hold.
const (
	PermActionCreate      = "action.create"
	PermActionRead        = "action.read"
	PermAgentRead         = "agent.read"
	PermInvestigatorAdmin = "investigator.admin"
)

// AllPermissions lists every permission, for administrators.
var AllPermissions = []string{PermActionCreate, PermActionRead, PermAgentRead, PermInvestigatorAdmin, PermAuditRead,
	PermManifestPublish, PermManifestRead}

// DefaultPermissions are given to an investigator created without any: what
// investigating takes (launch actions, read them, and see the agents, which
// the target preview of every launch needs), not administration.
var DefaultPermissions = []string{PermActionCreate, PermActionRead, PermAgentRead}

// MaxBodySize bounds request bodies.
const MaxBodySize = 4 << 20

// Dispatcher fans an action out to agents (the scheduler).
type Dispatcher interface {
	Dispatch(ctx context.Context, a *action.Action) (int, error)
}

// Store is what the API reads and writes: the store.Store methods its
// handlers call, and nothing else (store.Store satisfies it).
type Store interface {
	// Actions and their commands.
	CreateAction(ctx context.Context, a *action.Action) error
	Action(ctx context.Context, id uint64) (*action.Action, error)
	Actions(ctx context.Context, limit, offset int) ([]action.Action, error)
	Commands(ctx context.Context, q store.CommandQuery) ([]action.Command, error)
	Command(ctx context.Context, id uint64) (*action.Command, error)

	// Agents, and their enrollment.
	Agents(ctx context.Context, q store.AgentQuery) ([]action.Agent, error)
	CountAgents(ctx context.Context, t target.Expr) (int, error)
	AgentStatusCounts(ctx context.Context) (map[string]int, error)
	UpsertAgents(ctx context.Context, agents []action.Agent) error
	AgentCredential(ctx context.Context, agentID string) (store.AgentCredential, error)
	SaveAgentCredential(ctx context.Context, c store.AgentCredential) error

	// Investigators.
	CreateInvestigator(ctx context.Context, inv action.Investigator) (int64, error)
	Investigators(ctx context.Context) ([]action.Investigator, error)
	SetInvestigatorStatus(ctx context.Context, id int64, status string) error

	// API keys (apikey.go).
	CreateAPIKey(ctx context.Context, k store.APIKey) error
	APIKey(ctx context.Context, keyID string) (store.APIKey, error)
	APIKeys(ctx context.Context, investigatorID int64) ([]action.APIKey, error)
	RevokeAPIKey(ctx context.Context, keyID string, at time.Time) error
	TouchAPIKey(ctx context.Context, keyID string, at time.Time) error

	// Investigators' token nonces, each accepted once.
	UseTokenNonce(ctx context.Context, n store.TokenNonce) error
	PurgeTokenNonces(ctx context.Context, now time.Time) (int64, error)

	// The audit log (audit.go).
	AppendAudit(ctx context.Context, recs ...audit.Record) ([]audit.Entry, error)
	AuditLog(ctx context.Context, after uint64, limit int) ([]audit.Entry, error)

	// mig-loader's manifests and their files (manifest.go).
	CreateManifest(ctx context.Context, m store.ManifestRecord) (int64, error)
	Manifest(ctx context.Context, id int64) (store.ManifestRecord, error)
	ListManifests(ctx context.Context) ([]store.ManifestRecord, error)
	UpdateManifestBody(ctx context.Context, id int64, old, body []byte) error
	SetManifestStatus(ctx context.Context, id int64, status string) error
	CurrentManifest(ctx context.Context, name, os, arch string) (store.ManifestRecord, error)
	PutManifestFile(ctx context.Context, sha256 string, data []byte) (store.ManifestFileInfo, error)
	ManifestFileInfo(ctx context.Context, sha256 string) (store.ManifestFileInfo, error)
	ManifestFile(ctx context.Context, sha256 string) ([]byte, error)
}

var _ Store = store.Store(nil)

// Config configures the API.
type Config struct {
	Store      Store
	Dispatcher Dispatcher
	// EnrollmentTokens are the secrets agents present to enroll.
	EnrollmentTokens []string
	// RelayURL is the URL agents connect to, handed out at enrollment.
	RelayURL string
	// RelayCA is a PEM bundle agents use to verify the relay, if it uses TLS.
	RelayCA string
	// ProvisionAgent, when set, gives an enrolling agent its credentials
	// on the relay itself (RabbitMQ users); the embedded NATS relay checks
	// them against the store instead.
	ProvisionAgent func(ctx context.Context, agentID, password string) error
	// TrustedProxies are the proxies (load balancers) whose
	// X-Forwarded-For header names the client, for the API key failure
	// limit; none by default, and then the header is ignored.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// Now returns the current time (tests); nil is time.Now.
	Now func() time.Time
}

// API is the HTTP handler.
type API struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu         sync.Mutex
	keyring    *sign.Keyring
	byFP       map[string]action.Investigator
	byID       map[int64]action.Investigator // every investigator, active or not
	keyringAge time.Time

	failures failLimiter // failed API key authentications by source and key ID

	purgeMu   sync.Mutex
	lastPurge time.Time // when expired token nonces were last purged
}

// NoncePurgeInterval is how often, at most, a server deletes expired token
// nonces from the store: the table holds the nonces of the last
// sign.TokenMaxAge+sign.TokenMaxSkew plus up to this long.
const NoncePurgeInterval = 30 * time.Second

// New returns the API handler.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /api/v1/health", a.health)
	a.mux.HandleFunc("POST /api/v1/enroll", a.enroll)
	a.handle("POST /api/v1/actions", PermActionCreate, a.createAction)
	a.handle("GET /api/v1/actions", PermActionRead, a.listActions)
	a.handle("GET /api/v1/actions/{id}", PermActionRead, a.getAction)
	a.handle("GET /api/v1/actions/{id}/commands", PermActionRead, a.listCommands)
	a.handle("GET /api/v1/commands/{id}", PermActionRead, a.getCommand)
	a.handle("GET /api/v1/agents", PermAgentRead, a.listAgents)
	a.handle("GET /api/v1/agents/count", PermAgentRead, a.countAgents)
	a.handle("GET /api/v1/dashboard", PermAgentRead, a.dashboard)
	a.handle("GET /api/v1/investigators", PermInvestigatorAdmin, a.listInvestigators)
	a.handle("POST /api/v1/investigators", PermInvestigatorAdmin, a.createInvestigator)
	a.handle("POST /api/v1/investigators/{id}/status", PermInvestigatorAdmin, a.setInvestigatorStatus)
	a.handle("POST /api/v1/apikeys", "", a.createAPIKey)
	a.handle("GET /api/v1/apikeys", "", a.listAPIKeys)
	a.handle("GET /api/v1/audit", "", a.listAudit) // audit.read or investigator.admin
	a.handle("POST /api/v1/apikeys/{keyid}/revoke", "", a.revokeAPIKey)
	a.registerManifests()
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, bodyLimit(r))
	a.mux.ServeHTTP(w, r)
}

// Errors that map to HTTP statuses.
var (
	errBadRequest      = errors.New("bad request")
	errUnauthenticated = errors.New("unauthenticated")
	errForbidden       = errors.New("forbidden")
)

// httpError carries a status, a stable code and a message.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) error {
	return &httpError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// writeError is the one place where errors become HTTP statuses.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = &httpError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is over %d bytes", mbe.Limit)}
	case errors.Is(err, store.ErrNotFound):
		he = &httpError{http.StatusNotFound, "not_found", err.Error()}
	case errors.Is(err, store.ErrExists):
		he = &httpError{http.StatusConflict, "conflict", err.Error()}
	case errors.Is(err, errUnauthenticated):
		he = &httpError{http.StatusUnauthorized, "unauthenticated", err.Error()}
	case errors.Is(err, errForbidden):
		he = &httpError{http.StatusForbidden, "forbidden", err.Error()}
	case errors.Is(err, errBadRequest), errors.Is(err, action.ErrInvalid), errors.Is(err, target.ErrSyntax):
		he = &httpError{http.StatusBadRequest, "bad_request", err.Error()}
	default:
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{http.StatusInternalServerError, "internal", "internal error"}
	}
	writeJSON(w, he.status, map[string]string{"error": he.msg, "code": he.code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type ctxKey struct{}

// apiKeyCtxKey holds the key ID of the API key that authenticated a request.
type apiKeyCtxKey struct{}

// handle registers an authenticated endpoint needing perm (none when
// empty: the handler checks what it needs).
func (a *API) handle(pattern, perm string, h func(w http.ResponseWriter, r *http.Request) error) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		inv, keyID, err := a.authenticate(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if perm != "" && !hasPermission(inv, perm) {
			if keyID != "" {
				a.writeError(w, r, fmt.Errorf("%w: API key %s of investigator %q lacks permission %s", errForbidden, keyID, inv.Name, perm))
				return
			}
			a.writeError(w, r, fmt.Errorf("%w: investigator %q lacks permission %s", errForbidden, inv.Name, perm))
			return
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, inv)
		if keyID != "" {
			ctx = context.WithValue(ctx, apiKeyCtxKey{}, keyID)
		}
		r = r.WithContext(ctx)
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func hasPermission(inv action.Investigator, perm string) bool {
	for _, p := range inv.Permissions {
		if p == perm {
			return true
		}
	}
	return false
}

// activeKeyring returns the keyring of active investigators, rebuilt at most
// every few seconds (and at once after a change through this API), so that a
// key disabled through another server stops working quickly.
func (a *API) activeKeyring(ctx context.Context, force bool) (*sign.Keyring, map[string]action.Investigator, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !force && a.keyring != nil && a.cfg.Now().Sub(a.keyringAge) < 5*time.Second {
		return a.keyring, a.byFP, nil
	}
	invs, err := a.cfg.Store.Investigators(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load investigators: %w", err)
	}
	kr := &sign.Keyring{}
	byFP := map[string]action.Investigator{}
	byID := map[int64]action.Investigator{}
	for _, inv := range invs {
		byID[inv.ID] = inv
		if inv.Status != action.InvestigatorActive {
			continue
		}
		fp, err := kr.Add(inv.PublicKey)
		if err != nil {
			a.log.Warn("investigator key does not load", "investigator", inv.Name, "err", err)
			continue
		}
		byFP[fp] = inv
	}
	a.keyring, a.byFP, a.byID, a.keyringAge = kr, byFP, byID, a.cfg.Now()
	return kr, byFP, nil
}

// authenticate returns the investigator a request comes from, with the
// permissions it may use, and the ID of the API key that authenticated it
// (empty for an OpenPGP token).
func (a *API) authenticate(r *http.Request) (action.Investigator, string, error) {
	h := r.Header.Get("Authorization")
	if key, ok := strings.CutPrefix(h, APIKeyScheme+" "); ok {
		return a.authenticateAPIKey(r, key)
	}
	tok, ok := strings.CutPrefix(h, "MIG-PGP ")
	if !ok {
		return action.Investigator{}, "", fmt.Errorf("%w: no Authorization: MIG-PGP token or %s key", errUnauthenticated, APIKeyScheme)
	}
	kr, byFP, err := a.activeKeyring(r.Context(), false)
	if err != nil {
		return action.Investigator{}, "", err
	}
	vt, err := sign.VerifyToken(kr, strings.TrimSpace(tok), a.cfg.Now())
	if err != nil {
		return action.Investigator{}, "", fmt.Errorf("%w: %v", errUnauthenticated, err)
	}
	fp := vt.Fingerprint
	inv, ok := byFP[fp]
	if !ok {
		return action.Investigator{}, "", fmt.Errorf("%w: key %s is not an active investigator", errUnauthenticated, fp)
	}
	// Only a token that verified reaches the store: nobody without an
	// investigator's key can fill the nonce table.
	if err := a.useNonce(r, vt); err != nil {
		return action.Investigator{}, "", err
	}
	return inv, "", nil
}

// useNonce records the nonce of a verified token in the store, refusing a
// token whose nonce was used before (by this server or another over the
// same store), and purges expired nonces at most every
// NoncePurgeInterval.
func (a *API) useNonce(r *http.Request, t sign.Token) error {
	ctx := r.Context()
	a.purgeNonces(ctx)
	err := a.cfg.Store.UseTokenNonce(ctx, store.TokenNonce{KeyID: t.Fingerprint, Nonce: t.Nonce, Expires: t.Expires()})
	if errors.Is(err, store.ErrReplayed) {
		a.log.Warn("token replayed", "key", t.Fingerprint, "nonce", t.Nonce, "remote", r.RemoteAddr)
		return fmt.Errorf("%w: token replayed: key %s already used the token with nonce %s; a token is good for one request",
			errUnauthenticated, t.Fingerprint, t.Nonce)
	}
	if err != nil {
		return fmt.Errorf("record token nonce: %w", err)
	}
	return nil
}

// purgeNonces deletes expired token nonces if the last purge is
// NoncePurgeInterval old. A failure is logged, not answered: the request
// does not depend on it.
func (a *API) purgeNonces(ctx context.Context) {
	now := a.cfg.Now()
	a.purgeMu.Lock()
	due := a.lastPurge.IsZero() || now.Sub(a.lastPurge) >= NoncePurgeInterval || now.Before(a.lastPurge)
	if due {
		a.lastPurge = now
	}
	a.purgeMu.Unlock()
	if !due {
		return
	}
	n, err := a.cfg.Store.PurgeTokenNonces(context.WithoutCancel(ctx), now)
	if err != nil {
		a.log.Warn("purging expired token nonces failed", "err", err)
		return
	}
	if n > 0 {
		a.log.Debug("purged expired token nonces", "count", n)
	}
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": version.Version})
}

func readJSON(r *http.Request, v any) error {
	if err := strictjson.DecodeReader(r.Body, v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("bad_request", "request body is not valid JSON: %v", err)
	}
	return nil
}

// CheckAction is what the API refuses an action for, before any signature
// check: validation, an ID, known modules with valid parameters, a target
// that parses. It returns the checked action, whose signed encoding the
// signature check then uses, so the action is encoded once.
func CheckAction(a *action.Action) (*action.Checked, error) {
	checked, err := a.Check()
	if err != nil {
		return nil, err
	}
	if a.ID == 0 {
		return nil, badRequest("bad_request", "action has no id: the investigator's client sets one before signing")
	}
	if a.ID >= 1<<63 {
		return nil, badRequest("bad_request", "action id %d is too large", a.ID)
	}
	for i, op := range a.Operations {
		if _, _, err := module.Parse(op.Module, op.Parameters); err != nil {
			return nil, badRequest(module.ErrorCode(err), "operation %d: %v", i, err)
		}
	}
	if _, err := target.Parse(a.Target); err != nil {
		return nil, badRequest("bad_request", "target %q: %v", a.Target, err)
	}
	return checked, nil
}

func (a *API) createAction(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	act, err := action.ParseAction(body)
	if err != nil {
		return err
	}
	checked, err := CheckAction(act)
	if err != nil {
		return err
	}
	kr, byFP, err := a.activeKeyring(r.Context(), false)
	if err != nil {
		return err
	}
	fps, err := sign.VerifyChecked(checked, kr)
	if err != nil {
		code := action.CodeBadSignature
		if errors.Is(err, sign.ErrUnknownSigner) {
			code = action.CodeUntrusted
		}
		return badRequest(code, "signatures: %v", err)
	}
	act.Investigators = nil
	for _, fp := range fps {
		inv := byFP[fp]
		act.Investigators = append(act.Investigators, action.Investigator{ID: inv.ID, Name: inv.Name, Fingerprint: fp})
	}
	act.Status = action.StatusPending
	act.StartTime = a.cfg.Now().UTC()
	act.LastUpdateTime = act.StartTime
	actx := a.auditCtx(r, audit.KindActionCreate, strconv.FormatUint(act.ID, 10), actionAuditDetails(act, checked, fps))
	if err := a.cfg.Store.CreateAction(actx, act); err != nil {
		return fmt.Errorf("action %d: %w", act.ID, err)
	}
	inv := requestInvestigator(r)
	a.log.Info("action created", "action", act.ID, "name", act.Name, "target", act.Target, "by", inv.Name,
		"apikey", requestAPIKey(r))
	// The fan-out outlives the request: a client that goes away (a timeout,
	// a ^C) must not leave half the fleet waiting for the sweep to take the
	// abandoned lease over. It stays inside the request so that the answer
	// carries the number of commands sent (docs/ARCHITECTURE.md, "Fan-out").
	dctx := context.WithoutCancel(r.Context())
	n, err := a.cfg.Dispatcher.Dispatch(dctx, act)
	if err != nil {
		return err
	}
	a.auditLaunch(r, act.ID, n)
	stored, err := a.cfg.Store.Action(dctx, act.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, stored)
	return nil
}

func pathID(r *http.Request) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("bad_request", "id %q is not a number", s)
	}
	return id, nil
}

func queryInt(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("bad_request", "%s=%q is not a non-negative number", name, s)
	}
	if max > 0 && n > max {
		n = max
	}
	return n, nil
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 50, 1000)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0, 0)
	if err != nil {
		return err
	}
	acts, err := a.cfg.Store.Actions(r.Context(), limit, offset)
	if err != nil {
		return err
	}
	if acts == nil {
		acts = []action.Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"actions": acts})
	return nil
}

func (a *API) getAction(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	act, err := a.cfg.Store.Action(r.Context(), id)
	if err != nil {
		return fmt.Errorf("action %d: %w", id, err)
	}
	writeJSON(w, http.StatusOK, act)
	return nil
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 500, 5000)
	if err != nil {
		return err
	}
	var after uint64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			return badRequest("bad_request", "after=%q is not a command id", s)
		}
	}
	status := q.Get("status")
	if status != "" && status != action.CmdSent && !action.IsTerminal(status) {
		return badRequest("bad_request", "status=%q is not a command status", status)
	}
	cq := store.CommandQuery{ActionID: id, Status: status, AfterID: after, Limit: limit,
		FoundOnly: q.Get("found") == "true", NoResults: q.Get("results") == "false"}
	cmds, err := a.cfg.Store.Commands(r.Context(), cq)
	if err != nil {
		return err
	}
	var next uint64
	if len(cmds) == limit && limit > 0 {
		next = cmds[len(cmds)-1].ID
	}
	if cmds == nil {
		cmds = []action.Command{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": cmds, "next": next})
	return nil
}

func (a *API) getCommand(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	c, err := a.cfg.Store.Command(r.Context(), id)
	if err != nil {
		return fmt.Errorf("command %d: %w", id, err)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func parseTarget(r *http.Request) (target.Expr, error) {
	t := r.URL.Query().Get("target")
	if t == "" {
		return nil, nil
	}
	e, err := target.Parse(t)
	if err != nil {
		return nil, badRequest("bad_request", "target %q: %v", t, err)
	}
	return e, nil
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request) error {
	e, err := parseTarget(r)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 1000, 10000)
	if err != nil {
		return err
	}
	agents, err := a.cfg.Store.Agents(r.Context(), store.AgentQuery{Target: e, Limit: limit, After: r.URL.Query().Get("after")})
	if err != nil {
		return err
	}
	next := ""
	if limit > 0 && len(agents) == limit {
		next = agents[len(agents)-1].ID
	}
	if agents == nil {
		agents = []action.Agent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": agents, "next": next})
	return nil
}

func (a *API) countAgents(w http.ResponseWriter, r *http.Request) error {
	e, err := parseTarget(r)
	if err != nil {
		return err
	}
	n, err := a.cfg.Store.CountAgents(r.Context(), e)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"count": n})
	return nil
}

func (a *API) dashboard(w http.ResponseWriter, r *http.Request) error {
	counts, err := a.cfg.Store.AgentStatusCounts(r.Context())
	if err != nil {
		return err
	}
	for _, s := range []string{action.AgentOnline, action.AgentIdle, action.AgentOffline} {
		if _, ok := counts[s]; !ok {
			counts[s] = 0
		}
	}
	acts, err := a.cfg.Store.Actions(r.Context(), 10, 0)
	if err != nil {
		return err
	}
	if acts == nil {
		acts = []action.Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": counts, "actions": acts})
	return nil
}

func (a *API) listInvestigators(w http.ResponseWriter, r *http.Request) error {
	invs, err := a.cfg.Store.Investigators(r.Context())
	if err != nil {
		return err
	}
	if invs == nil {
		invs = []action.Investigator{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"investigators": invs})
	return nil
}

func (a *API) createInvestigator(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name        string   `json:"name"`
		PublicKey   string   `json:"publickey"`
		Permissions []string `json:"permissions"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	inv, err := NewInvestigator(req.Name, req.PublicKey, req.Permissions, a.cfg.Now())
	if err != nil {
		return err
	}
	rec := InvestigatorCreateRecord(inv, auditActor(r))
	rec.Time = a.cfg.Now()
	id, err := a.cfg.Store.CreateInvestigator(store.WithAudit(r.Context(), rec), inv)
	if err != nil {
		return fmt.Errorf("investigator %s: %w", inv.Fingerprint, err)
	}
	inv.ID = id
	if _, _, err := a.activeKeyring(r.Context(), true); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, inv)
	return nil
}

// NewInvestigator checks a new investigator's name, key and permissions;
// no permissions means DefaultPermissions.
func NewInvestigator(name, publicKey string, perms []string, now time.Time) (action.Investigator, error) {
	if strings.TrimSpace(name) == "" {
		return action.Investigator{}, badRequest("bad_request", "investigator name is empty")
	}
	fp, err := sign.ParsePublicKey(publicKey)
	if err != nil {
		return action.Investigator{}, badRequest("bad_request", "public key of %q: %v", name, err)
	}
	for _, p := range perms {
		known := false
		for _, k := range AllPermissions {
			known = known || p == k
		}
		if !known {
			return action.Investigator{}, badRequest("bad_request", "unknown permission %q (known: %s)", p, strings.Join(AllPermissions, ", "))
		}
	}
	if len(perms) == 0 {
		perms = slices.Clone(DefaultPermissions)
	}
	return action.Investigator{Name: name, Fingerprint: fp, PublicKey: publicKey,
		Status: action.InvestigatorActive, Permissions: perms, CreatedAt: now.UTC()}, nil
}

func (a *API) setInvestigatorStatus(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badRequest("bad_request", "investigator id %q is not a number", r.PathValue("id"))
	}
	var req struct {
		Status string `json:"status"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Status != action.InvestigatorActive && req.Status != action.InvestigatorDisabled {
		return badRequest("bad_request", "status %q is neither %q nor %q", req.Status, action.InvestigatorActive, action.InvestigatorDisabled)
	}
	kind := audit.KindInvestigatorEnable
	if req.Status == action.InvestigatorDisabled {
		kind = audit.KindInvestigatorDisable
	}
	details := map[string]string{}
	if target, err := a.investigatorByID(r.Context(), id); err == nil {
		details["fingerprint"], details["name"] = target.Fingerprint, target.Name
	}
	if err := a.cfg.Store.SetInvestigatorStatus(a.auditCtx(r, kind, strconv.FormatInt(id, 10), details), id, req.Status); err != nil {
		return fmt.Errorf("investigator %d: %w", id, err)
	}
	if _, _, err := a.activeKeyring(r.Context(), true); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{})
	return nil
}

// EnrollRequest is what an agent sends to enroll.
type EnrollRequest struct {
	PublicKey string       `json:"publickey"` // base64 Ed25519
	Time      string       `json:"time"`      // RFC 3339
	Proof     string       `json:"proof"`     // base64 Ed25519 signature
	Agent     action.Agent `json:"agent"`
}

// EnrollResponse is what an enrolled agent gets back.
type EnrollResponse struct {
	AgentID string            `json:"agentid"`
	Relay   relay.Credentials `json:"relay"`
}

func (a *API) checkEnrollmentToken(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	good := false
	for _, t := range a.cfg.EnrollmentTokens {
		if t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(strings.TrimSpace(tok))) == 1 {
			good = true
		}
	}
	return good
}

func (a *API) enroll(w http.ResponseWriter, r *http.Request) {
	if err := a.doEnroll(w, r); err != nil {
		a.writeError(w, r, err)
	}
}

func (a *API) doEnroll(w http.ResponseWriter, r *http.Request) error {
	if !a.checkEnrollmentToken(r) {
		return fmt.Errorf("%w: missing or wrong enrollment token", errUnauthenticated)
	}
	var req EnrollRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	pub, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return badRequest("bad_request", "publickey is not a base64 Ed25519 public key")
	}
	ts, err := time.Parse(time.RFC3339, req.Time)
	if err != nil {
		return badRequest("bad_request", "time %q is not RFC 3339", req.Time)
	}
	if d := a.cfg.Now().Sub(ts); d > 5*time.Minute || d < -5*time.Minute {
		return badRequest("bad_request", "time %s is more than 5 minutes from the server's clock", req.Time)
	}
	id := action.AgentID(pub)
	proof, err := base64.StdEncoding.DecodeString(req.Proof)
	if err != nil || !ed25519.Verify(pub, []byte("mig-enroll-v1\n"+id+"\n"+req.Time), proof) {
		return fmt.Errorf("%w: enrollment proof does not verify for agent %s", errUnauthenticated, id)
	}
	// An agent already enrolled must enroll with the same key: the ID is
	// derived from the key, so this holds by construction.
	_, err = a.cfg.Store.AgentCredential(r.Context(), id)
	first := errors.Is(err, store.ErrNotFound)
	if err != nil && !first {
		return err
	}
	pass, err := relay.NewPassword()
	if err != nil {
		return err
	}
	cred := store.AgentCredential{AgentID: id, PublicKey: pub, PasswordHash: relay.HashPassword(pass), EnrolledAt: a.cfg.Now().UTC()}
	if err := a.cfg.Store.SaveAgentCredential(r.Context(), cred); err != nil {
		return err
	}
	if a.cfg.ProvisionAgent != nil {
		if err := a.cfg.ProvisionAgent(r.Context(), id, pass); err != nil {
			return fmt.Errorf("give agent %s its relay credentials: %w", id, err)
		}
	}
	ag := req.Agent
	ag.ID = id
	ag.HeartbeatTime = a.cfg.Now().UTC()
	ag.Status = action.AgentOnline
	if err := a.cfg.Store.UpsertAgents(r.Context(), []action.Agent{ag}); err != nil {
		return err
	}
	a.log.Info("agent enrolled", "agent", id, "name", ag.Name)
	if first {
		a.auditEnroll(r, ag, pub)
	}
	writeJSON(w, http.StatusOK, EnrollResponse{AgentID: id,
		Relay: relay.Credentials{URL: a.cfg.RelayURL, User: id, Password: pass, CA: a.cfg.RelayCA}})
	return nil
}
