package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/store"
)

// Permissions over mig-loader's manifests.
const (
	// PermManifestPublish lets an investigator upload files, publish,
	// sign, disable and enable manifests.
	PermManifestPublish = "manifest.publish"
	// PermManifestRead lets an investigator list and read manifests.
	PermManifestRead = "manifest.read"
)

// Audit kinds of manifest changes.
const (
	auditManifestPublish = "manifest.publish"
	auditManifestSign    = "manifest.sign"
	auditManifestStatus  = "manifest.status"
	auditManifestFile    = "manifest.file"
)

// Loader authentication (docs/API.md, "Manifests and the loader").
const (
	// AgentScheme is the Authorization scheme of mig-loader's requests,
	// signed with the key of the host's enrolled agent.
	AgentScheme = "MIG-Agent"
	// LoaderSignaturePrefix starts what a loader request's signature
	// covers, so that it can never be taken for another signed message.
	LoaderSignaturePrefix = "mig-loader-v1\n"
	// LoaderMaxSkew is how far a loader request's time may be from the
	// server's clock.
	LoaderMaxSkew = 5 * time.Minute
)

// manifestFilesPath is the upload endpoint, whose body bound is
// manifest.MaxFileSize instead of MaxBodySize.
const manifestFilesPath = "/api/v1/manifests/files"

// registerManifests adds the manifest and loader endpoints.
func (a *API) registerManifests() {
	a.handle("POST "+manifestFilesPath, PermManifestPublish, a.uploadManifestFile)
	a.handle("POST /api/v1/manifests", PermManifestPublish, a.publishManifest)
	a.handle("GET /api/v1/manifests", PermManifestRead, a.listManifests)
	a.handle("GET /api/v1/manifests/{id}", PermManifestRead, a.getManifest)
	a.handle("POST /api/v1/manifests/{id}/signatures", PermManifestPublish, a.signManifest)
	a.handle("POST /api/v1/manifests/{id}/status", PermManifestPublish, a.setManifestStatus)
	a.mux.HandleFunc("GET /api/v1/loader/manifest", a.loaderHandler(a.loaderManifest))
	a.mux.HandleFunc("GET /api/v1/loader/files/{sha256}", a.loaderHandler(a.loaderFile))
}

// bodyLimit returns the bound of a request's body.
func bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPost && r.URL.Path == manifestFilesPath {
		return manifest.MaxFileSize
	}
	return MaxBodySize
}

func (a *API) uploadManifestFile(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return badRequest("bad_request", "manifest file: the request body is empty")
	}
	sum := sha256Hex(data)
	ctx := a.auditCtx(r, auditManifestFile, sum, map[string]string{"size": strconv.Itoa(len(data))})
	fi, err := a.cfg.Store.PutManifestFile(ctx, sum, data)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sha256": fi.SHA256, "size": fi.Size})
	return nil
}

// parseManifest parses a manifest as the API refuses it: 400 with the
// parser's reason.
func parseManifest(data []byte) (*manifest.Manifest, error) {
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, badRequest("bad_manifest", "manifest: %v", err)
	}
	return m, nil
}

// verifyManifestSignatures checks every signature of m against the active
// investigators' keys and returns the signers, refusing a manifest without
// any, a bad one, an unknown signer and a signer counted twice. This is a
// check for the publishers' sake: the loader verifies again with its own
// keyring and ACL.
func (a *API) verifyManifestSignatures(r *http.Request, m *manifest.Manifest) ([]string, error) {
	if len(m.Signatures) == 0 {
		return nil, badRequest("bad_signature", "manifest %s has no signature", m)
	}
	kr, _, err := a.activeKeyring(r.Context(), false)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var fps []string
	for i, s := range m.Signatures {
		fp, err := manifest.VerifySignature(m, kr, s)
		if err != nil {
			return nil, badRequest("bad_signature", "manifest %s: signature %d of %d: %v", m, i+1, len(m.Signatures), err)
		}
		if seen[fp] {
			return nil, badRequest("bad_signature", "manifest %s: signature %d of %d: key %s signed it already", m, i+1, len(m.Signatures), fp)
		}
		seen[fp] = true
		fps = append(fps, fp)
	}
	return fps, nil
}

func (a *API) publishManifest(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	m, err := parseManifest(data)
	if err != nil {
		return err
	}
	fps, err := a.verifyManifestSignatures(r, m)
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		fi, err := a.cfg.Store.ManifestFileInfo(r.Context(), f.SHA256)
		if errors.Is(err, store.ErrNotFound) {
			return badRequest("missing_file", "manifest %s: file %s (sha256 %s) was never uploaded: POST it to %s first", m, f.Role, f.SHA256, manifestFilesPath)
		}
		if err != nil {
			return err
		}
		if fi.Size != f.Size {
			return badRequest("bad_manifest", "manifest %s: file %s is %d bytes in the manifest but %d as uploaded", m, f.Role, f.Size, fi.Size)
		}
	}
	body, err := m.Marshal()
	if err != nil {
		return badRequest("bad_manifest", "manifest %s: %v", m, err)
	}
	inv := requestInvestigator(r)
	rec := store.ManifestRecord{Name: m.Name, OS: m.OS, Arch: m.Arch, Serial: m.Serial, Status: store.ManifestActive,
		Body: body, CreatedAt: a.cfg.Now(), PublishedBy: inv.Fingerprint}
	ctx := a.auditCtx(r, auditManifestPublish, m.String(), map[string]string{
		"name": m.Name, "os": m.OS, "arch": m.Arch, "serial": strconv.FormatUint(m.Serial, 10), "signers": strings.Join(fps, ","),
	})
	id, err := a.cfg.Store.CreateManifest(ctx, rec)
	if errors.Is(err, store.ErrExists) {
		return &httpError{http.StatusConflict, "conflict", fmt.Sprintf("manifest %s/%s/%s serial %d exists: a new one needs a higher serial", m.Name, m.OS, m.Arch, m.Serial)}
	}
	if err != nil {
		return err
	}
	rec.ID = id
	writeJSON(w, http.StatusCreated, a.manifestView(r, rec, m, true))
	return nil
}

// manifestView is a manifest as the API shows it.
func (a *API) manifestView(r *http.Request, rec store.ManifestRecord, m *manifest.Manifest, withBody bool) map[string]any {
	v := map[string]any{
		"id": rec.ID, "name": rec.Name, "os": rec.OS, "arch": rec.Arch, "serial": rec.Serial, "status": rec.Status,
		"published_by": rec.PublishedBy, "published_at": rec.CreatedAt.UTC().Format(time.RFC3339),
	}
	if m != nil {
		v["files"] = m.Files
		v["created"] = m.Created.UTC().Format(time.RFC3339)
		v["expires"] = m.Expires.UTC().Format(time.RFC3339)
		v["signatures"] = len(m.Signatures)
		signers := []string{}
		if kr, _, err := a.activeKeyring(r.Context(), false); err == nil {
			for _, s := range m.Signatures {
				if fp, err := manifest.VerifySignature(m, kr, s); err == nil {
					signers = append(signers, fp)
				}
			}
		}
		v["signers"] = signers
	}
	if withBody {
		v["body"] = string(rec.Body)
	}
	return v
}

func (a *API) listManifests(w http.ResponseWriter, r *http.Request) error {
	recs, err := a.cfg.Store.ListManifests(r.Context())
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, rec := range recs {
		m, err := manifest.Parse(rec.Body)
		if err != nil {
			a.log.Warn("stored manifest does not parse", "id", rec.ID, "err", err)
			m = nil
		}
		out = append(out, a.manifestView(r, rec, m, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifests": out})
	return nil
}

// manifestID reads the {id} of a manifest path.
func manifestID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("bad_request", "manifest id %q is not a positive integer", r.PathValue("id"))
	}
	return id, nil
}

func (a *API) getManifest(w http.ResponseWriter, r *http.Request) error {
	id, err := manifestID(r)
	if err != nil {
		return err
	}
	rec, err := a.cfg.Store.Manifest(r.Context(), id)
	if err != nil {
		return err
	}
	m, _ := manifest.Parse(rec.Body)
	writeJSON(w, http.StatusOK, a.manifestView(r, rec, m, true))
	return nil
}

func (a *API) signManifest(w http.ResponseWriter, r *http.Request) error {
	id, err := manifestID(r)
	if err != nil {
		return err
	}
	var req struct {
		Signature string `json:"signature"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Signature) == "" {
		return badRequest("bad_request", "no signature: want {\"signature\": \"<armored OpenPGP signature>\"}")
	}
	rec, err := a.cfg.Store.Manifest(r.Context(), id)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(rec.Body)
	if err != nil {
		return fmt.Errorf("stored manifest %d: %w", id, err)
	}
	m.Signatures = append(m.Signatures, req.Signature)
	fps, err := a.verifyManifestSignatures(r, m)
	if err != nil {
		return err
	}
	body, err := m.Marshal()
	if err != nil {
		return badRequest("bad_manifest", "manifest %s: %v", m, err)
	}
	ctx := a.auditCtx(r, auditManifestSign, strconv.FormatInt(id, 10), map[string]string{"signer": fps[len(fps)-1], "signers": strings.Join(fps, ",")})
	err = a.cfg.Store.UpdateManifestBody(ctx, id, rec.Body, body)
	if errors.Is(err, store.ErrConflict) {
		return &httpError{http.StatusConflict, "conflict", fmt.Sprintf("manifest %d was signed by someone else at the same time: sign again", id)}
	}
	if err != nil {
		return err
	}
	rec.Body = body
	writeJSON(w, http.StatusOK, a.manifestView(r, rec, m, true))
	return nil
}

func (a *API) setManifestStatus(w http.ResponseWriter, r *http.Request) error {
	id, err := manifestID(r)
	if err != nil {
		return err
	}
	var req struct {
		Status string `json:"status"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if err := store.CheckManifestStatus(req.Status); err != nil {
		return badRequest("bad_request", "%v", err)
	}
	ctx := a.auditCtx(r, auditManifestStatus, strconv.FormatInt(id, 10), map[string]string{"status": req.Status})
	if err := a.cfg.Store.SetManifestStatus(ctx, id, req.Status); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": req.Status})
	return nil
}

// loaderHandler authenticates a loader request (authenticateLoader) before h.
func (a *API) loaderHandler(h func(w http.ResponseWriter, r *http.Request, agentID string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := a.authenticateLoader(r)
		if err != nil {
			a.log.Warn("loader request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			a.writeError(w, r, err)
			return
		}
		if err := h(w, r, id); err != nil {
			a.writeError(w, r, err)
		}
	}
}

// LoaderSignedMessage is what a loader signs for a request.
func LoaderSignedMessage(agentID, ts, method, requestURI string) []byte {
	return []byte(LoaderSignaturePrefix + agentID + "\n" + ts + "\n" + method + "\n" + requestURI)
}

// ParseAgentAuthorization reads the parameters of a "MIG-Agent id=...,
// time=...,sig=..." Authorization header: each once, nothing else.
func ParseAgentAuthorization(h string) (id, ts string, sig []byte, err error) {
	rest, ok := strings.CutPrefix(h, AgentScheme+" ")
	if !ok {
		return "", "", nil, fmt.Errorf("no Authorization: %s id=...,time=...,sig=... header", AgentScheme)
	}
	seen := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || (k != "id" && k != "time" && k != "sig") {
			return "", "", nil, fmt.Errorf("%s authorization: parameter %q is not id=, time= or sig=", AgentScheme, p)
		}
		if _, dup := seen[k]; dup {
			return "", "", nil, fmt.Errorf("%s authorization: parameter %s appears twice", AgentScheme, k)
		}
		seen[k] = v
	}
	if seen["id"] == "" || seen["time"] == "" || seen["sig"] == "" {
		return "", "", nil, fmt.Errorf("%s authorization: want id, time and sig, got %d of them", AgentScheme, len(seen))
	}
	sig, err = base64.StdEncoding.DecodeString(seen["sig"])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", "", nil, fmt.Errorf("%s authorization: sig is not a base64 ed25519 signature", AgentScheme)
	}
	return seen["id"], seen["time"], sig, nil
}

// authenticateLoader checks a loader's MIG-Agent header: an enrolled
// agent whose key derives its ID signed this method and request URI at a
// time within LoaderMaxSkew of the server's clock. It returns the agent ID.
func (a *API) authenticateLoader(r *http.Request) (string, error) {
	id, ts, sig, err := ParseAgentAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", errUnauthenticated, err)
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return "", fmt.Errorf("%w: %s authorization: time %q is not RFC 3339", errUnauthenticated, AgentScheme, ts)
	}
	if d := a.cfg.Now().Sub(t); d > LoaderMaxSkew || d < -LoaderMaxSkew {
		return "", fmt.Errorf("%w: %s authorization: time %s is %s from the server's clock, more than %s", errUnauthenticated, AgentScheme, ts, d.Round(time.Second), LoaderMaxSkew)
	}
	cred, err := a.cfg.Store.AgentCredential(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: agent %q is not enrolled", errUnauthenticated, id)
	}
	if err != nil {
		return "", err
	}
	pub := ed25519.PublicKey(cred.PublicKey)
	if len(pub) != ed25519.PublicKeySize || action.AgentID(pub) != id {
		return "", fmt.Errorf("%w: agent %q: its enrolled key does not derive its id", errUnauthenticated, id)
	}
	if !ed25519.Verify(pub, LoaderSignedMessage(id, ts, r.Method, r.RequestURI), sig) {
		return "", fmt.Errorf("%w: agent %q: the signature does not verify for %s %s at %s", errUnauthenticated, id, r.Method, r.RequestURI, ts)
	}
	return id, nil
}

func (a *API) loaderManifest(w http.ResponseWriter, r *http.Request, agentID string) error {
	q := r.URL.Query()
	name, goos, arch := q.Get("name"), q.Get("os"), q.Get("arch")
	if name == "" || goos == "" || arch == "" {
		return badRequest("bad_request", "want the query parameters name, os and arch")
	}
	rec, err := a.cfg.Store.CurrentManifest(r.Context(), name, goos, arch)
	if errors.Is(err, store.ErrNotFound) {
		return &httpError{http.StatusNotFound, "not_found", fmt.Sprintf("no active manifest %s for %s/%s", name, goos, arch)}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(rec.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec.Body)
	return nil
}

func (a *API) loaderFile(w http.ResponseWriter, r *http.Request, agentID string) error {
	sum := r.PathValue("sha256")
	if err := store.CheckSHA256Hex(sum); err != nil {
		return badRequest("bad_request", "%v", err)
	}
	data, err := a.cfg.Store.ManifestFile(r.Context(), sum)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, bytes.NewReader(data))
	return nil
}

// sha256Hex returns the lower-case hex SHA-256 of data.
func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
