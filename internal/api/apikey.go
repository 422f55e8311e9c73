package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// API keys let automation (scripts, a scheduled runner) read actions,
// results and agents without an OpenPGP key at hand:
//
//	Authorization: MIG-APIKEY mig_<keyid>_<secret>
//
// The key ID is 8 random bytes in hex, used to find the key; the secret is
// 32 random bytes from crypto/rand in hex. The store keeps only the SHA-256
// of the secret (a fast hash is right for a high-entropy secret), compared in
// constant time. A key acts for its investigator with at most its own
// permissions, intersected at each request with the investigator's current
// ones, and stops working when it is revoked or expired or its investigator
// is disabled.
//
// An API key can never sign: creating an action with one still needs
// OpenPGP signatures that verify, exactly as with a token, and agents see
// no difference. An API key cannot create API keys either: that needs an
// OpenPGP token, so a leaked key cannot make itself a successor.
//
// Who manages keys: every investigator creates, lists and revokes their own
// keys; investigator.admin lists (?all=true) and revokes everyone's.

// APIKeyScheme is the Authorization scheme of API keys.
const APIKeyScheme = "MIG-APIKEY"

// Bounds of API keys.
const (
	// maxAuthHeader bounds the API key part of an Authorization header.
	maxAuthHeader = 256
	// maxAPIKeyName bounds a key's name, in bytes.
	maxAPIKeyName = 200
	// apiKeyTouchEvery is how stale a key's last-used time may get
	// before a request records it again.
	apiKeyTouchEvery = time.Minute
)

// DefaultAPIKeyPermissions are given to a key created without any (when
// its investigator holds them): reading, what automation mostly needs.
var DefaultAPIKeyPermissions = []string{PermActionRead, PermAgentRead}

// NewAPIKey returns a new key, its ID and the SHA-256 of its secret, from
// crypto/rand.
func NewAPIKey() (key, keyID string, hash []byte) {
	var id [action.APIKeyIDLen / 2]byte
	var secret [action.APIKeySecretLen / 2]byte
	_, _ = rand.Read(id[:]) // never fails; see crypto/rand.Read
	_, _ = rand.Read(secret[:])
	keyID = hex.EncodeToString(id[:])
	sec := hex.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	return action.APIKeyPrefix + keyID + "_" + sec, keyID, sum[:]
}

// authenticateAPIKey checks an API key and returns its investigator with the
// key's effective permissions. Refusals name why, never the secret.
//
// The key is checked first, always: a valid key works even while its
// source address or its key ID is over the failure limit (failures.go), so
// an attacker flooding bad keys through the same load balancer cannot lock
// out automation. Only failures are counted; a failure past the limit is
// answered 429 instead of 401.
func (a *API) authenticateAPIKey(r *http.Request, key string) (action.Investigator, string, error) {
	now := a.cfg.Now()
	inv, keyID, err := a.checkAPIKey(r.Context(), strings.TrimSpace(key), now)
	if err == nil {
		return inv, keyID, nil
	}
	if !errors.Is(err, errUnauthenticated) {
		return action.Investigator{}, "", err
	}
	src := a.clientSource(r)
	if what := a.failures.fail(src, keyID, now); what != "" {
		return action.Investigator{}, "", &httpError{http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("too many failed API key authentications %s; retry in a minute", what)}
	}
	return action.Investigator{}, "", err
}

// checkAPIKey checks key. On a failure it still returns the key ID when
// that key exists in the store (a wrong secret, a revoked or expired key),
// for the per-key failure count; unknown IDs are not counted per key.
func (a *API) checkAPIKey(ctx context.Context, key string, now time.Time) (action.Investigator, string, error) {
	if len(key) > maxAuthHeader {
		return action.Investigator{}, "", fmt.Errorf("%w: %s key is over %d bytes", errUnauthenticated, APIKeyScheme, maxAuthHeader)
	}
	keyID, secret, err := action.ParseAPIKey(key)
	if err != nil {
		return action.Investigator{}, "", fmt.Errorf("%w: %v", errUnauthenticated, err)
	}
	k, err := a.cfg.Store.APIKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return action.Investigator{}, "", fmt.Errorf("%w: unknown API key %s", errUnauthenticated, keyID)
	}
	if err != nil {
		return action.Investigator{}, "", err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], k.SecretHash) != 1 {
		return action.Investigator{}, keyID, fmt.Errorf("%w: wrong secret for API key %s", errUnauthenticated, keyID)
	}
	if !k.RevokedAt.IsZero() {
		return action.Investigator{}, keyID, fmt.Errorf("%w: API key %s was revoked at %s", errUnauthenticated, keyID,
			k.RevokedAt.UTC().Format(time.RFC3339))
	}
	if !k.ExpireAfter.IsZero() && !now.Before(k.ExpireAfter) {
		return action.Investigator{}, keyID, fmt.Errorf("%w: API key %s expired at %s", errUnauthenticated, keyID,
			k.ExpireAfter.UTC().Format(time.RFC3339))
	}
	inv, err := a.investigatorByID(ctx, k.InvestigatorID)
	if err != nil {
		return action.Investigator{}, "", err
	}
	if inv.Status != action.InvestigatorActive {
		return action.Investigator{}, keyID, fmt.Errorf("%w: API key %s belongs to investigator %q, who is %s",
			errUnauthenticated, keyID, inv.Name, inv.Status)
	}
	inv.Permissions = intersect(k.Permissions, inv.Permissions)
	if now.Sub(k.LastUsedAt) >= apiKeyTouchEvery {
		if err := a.cfg.Store.TouchAPIKey(ctx, keyID, now.UTC()); err != nil {
			a.log.Warn("recording the use of an api key failed", "apikey", keyID, "err", err)
		}
	}
	return inv, keyID, nil
}

// investigatorByID returns an investigator, active or not, from the cache
// activeKeyring keeps, reloading it once if the ID is not there.
func (a *API) investigatorByID(ctx context.Context, id int64) (action.Investigator, error) {
	for _, force := range []bool{false, true} {
		if _, _, err := a.activeKeyring(ctx, force); err != nil {
			return action.Investigator{}, err
		}
		a.mu.Lock()
		inv, ok := a.byID[id]
		a.mu.Unlock()
		if ok {
			return inv, nil
		}
	}
	return action.Investigator{}, fmt.Errorf("%w: investigator %d of the API key is unknown", errUnauthenticated, id)
}

// intersect returns the elements of want that have also holds, in want's
// order.
func intersect(want, have []string) []string {
	var out []string
	for _, p := range want {
		if slices.Contains(have, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func requestAPIKey(r *http.Request) string {
	id, _ := r.Context().Value(apiKeyCtxKey{}).(string)
	return id
}

func requestInvestigator(r *http.Request) action.Investigator {
	inv, _ := r.Context().Value(ctxKey{}).(action.Investigator)
	return inv
}

// CreateAPIKeyRequest is the body of POST /apikeys.
type CreateAPIKeyRequest struct {
	Name        string   `json:"name"`
	Permissions []string `json:"permissions,omitempty"`
	// ExpireAfter, when set, is when the key stops working (RFC 3339).
	ExpireAfter time.Time `json:"expireafter,omitzero"`
}

// CreateAPIKeyResponse is the answer of POST /apikeys: the key, shown this
// once, and its description.
type CreateAPIKeyResponse struct {
	Key    string        `json:"key"`
	APIKey action.APIKey `json:"apikey"`
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	inv := requestInvestigator(r)
	if id := requestAPIKey(r); id != "" {
		return fmt.Errorf("%w: API key %s cannot create API keys; authenticate with your OpenPGP key (MIG-PGP)", errForbidden, id)
	}
	var req CreateAPIKeyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		return badRequest("bad_request", "API key name is empty")
	case len(name) > maxAPIKeyName:
		return badRequest("bad_request", "API key name is %d bytes long, over %d", len(name), maxAPIKeyName)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, func(c rune) bool { return c < ' ' || c == 0x7f }):
		return badRequest("bad_request", "API key name %q holds control characters or invalid UTF-8", name)
	}
	var perms []string
	for _, p := range req.Permissions {
		if !slices.Contains(AllPermissions, p) {
			return badRequest("bad_request", "unknown permission %q (known: %s)", p, strings.Join(AllPermissions, ", "))
		}
		if !slices.Contains(inv.Permissions, p) {
			return fmt.Errorf("%w: investigator %q lacks permission %s, so their API keys cannot have it", errForbidden, inv.Name, p)
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	if len(req.Permissions) == 0 {
		perms = intersect(DefaultAPIKeyPermissions, inv.Permissions)
		if len(perms) == 0 {
			return badRequest("bad_request", "investigator %q has none of the default API key permissions (%s): give -perm",
				inv.Name, strings.Join(DefaultAPIKeyPermissions, ","))
		}
	}
	now := a.cfg.Now().UTC()
	if !req.ExpireAfter.IsZero() {
		if !req.ExpireAfter.After(now) {
			return badRequest("bad_request", "expireafter %s is not in the future", req.ExpireAfter.Format(time.RFC3339))
		}
		if req.ExpireAfter.Year() > 9999 {
			return badRequest("bad_request", "expireafter %s is after the year 9999", req.ExpireAfter.Format(time.RFC3339))
		}
	}
	key, keyID, hash := NewAPIKey()
	k := store.APIKey{APIKey: action.APIKey{KeyID: keyID, InvestigatorID: inv.ID, Name: name, Permissions: perms,
		CreatedAt: now, ExpireAfter: req.ExpireAfter.UTC()}, SecretHash: hash}
	details := map[string]string{"name": name, "permissions": strings.Join(perms, ",")}
	if !k.ExpireAfter.IsZero() {
		details["expireafter"] = k.ExpireAfter.Format(time.RFC3339)
	}
	if err := a.cfg.Store.CreateAPIKey(a.auditCtx(r, audit.KindAPIKeyCreate, keyID, details), k); err != nil {
		return fmt.Errorf("api key %s: %w", keyID, err)
	}
	a.log.Info("api key created", "apikey", keyID, "name", name, "investigator", inv.Name,
		"permissions", strings.Join(perms, ","))
	writeJSON(w, http.StatusCreated, CreateAPIKeyResponse{Key: key, APIKey: k.APIKey})
	return nil
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	inv := requestInvestigator(r)
	id := inv.ID
	switch all := r.URL.Query().Get("all"); all {
	case "", "false":
	case "true":
		if !hasPermission(inv, PermInvestigatorAdmin) {
			return fmt.Errorf("%w: listing every investigator's API keys needs permission %s", errForbidden, PermInvestigatorAdmin)
		}
		id = 0
	default:
		return badRequest("bad_request", "all=%q is neither true nor false", all)
	}
	keys, err := a.cfg.Store.APIKeys(r.Context(), id)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []action.APIKey{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"apikeys": keys})
	return nil
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	inv := requestInvestigator(r)
	keyID := r.PathValue("keyid")
	if !store.ValidAPIKeyID(keyID) {
		return badRequest("bad_request", "API key id %q is not 16 lower-case hex digits", keyID)
	}
	k, err := a.cfg.Store.APIKey(r.Context(), keyID)
	if err != nil {
		return fmt.Errorf("api key %s: %w", keyID, err)
	}
	if k.InvestigatorID != inv.ID && !hasPermission(inv, PermInvestigatorAdmin) {
		// Someone else's key looks like no key at all.
		return fmt.Errorf("api key %s: %w", keyID, store.ErrNotFound)
	}
	actx := a.auditCtx(r, audit.KindAPIKeyRevoke, keyID, map[string]string{"owner": strconv.FormatInt(k.InvestigatorID, 10)})
	if err := a.cfg.Store.RevokeAPIKey(actx, keyID, a.cfg.Now().UTC()); err != nil {
		return fmt.Errorf("api key %s: %w", keyID, err)
	}
	a.log.Info("api key revoked", "apikey", keyID, "by", inv.Name)
	if k, err = a.cfg.Store.APIKey(r.Context(), keyID); err != nil {
		return fmt.Errorf("api key %s: %w", keyID, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"apikey": k.APIKey})
	return nil
}
