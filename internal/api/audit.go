package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// The audit trail (package audit): the API records every action created,
// with the fingerprints whose signatures verified, every launch, and every
// investigator and API key change, as hash-chained entries. A change and
// its entry are written in one store transaction (store.WithAudit), so
// that neither exists without the other. The launch entry is the exception:
// it records the fan-out's outcome after the commands are sent, in its own
// transaction; if that append fails the action still runs and the error is
// logged.

// PermAuditRead lets an investigator read the audit log. Holders of
// investigator.admin may read it too: they administer what it records.
const PermAuditRead = "audit.read"

// maxAuditLimit bounds one page of GET /audit.
const maxAuditLimit = store.MaxAuditPage

// auditActor names who made a request: the API key it authenticated with,
// or the investigator's key fingerprint.
func auditActor(r *http.Request) string {
	if id := requestAPIKey(r); id != "" {
		return audit.ActorAPIKeyPrefix + id
	}
	return audit.ActorInvestigatorPrefix + requestInvestigator(r).Fingerprint
}

// auditCtx returns the request's context carrying the audit record of the
// change it is about to make.
func (a *API) auditCtx(r *http.Request, kind, object string, details map[string]string) context.Context {
	return store.WithAudit(r.Context(), a.auditRecord(r, kind, object, details))
}

func (a *API) auditRecord(r *http.Request, kind, object string, details map[string]string) audit.Record {
	if details == nil {
		details = map[string]string{}
	}
	if requestAPIKey(r) != "" {
		details["investigator"] = requestInvestigator(r).Fingerprint
	}
	return audit.Record{Time: a.cfg.Now(), Actor: auditActor(r), Kind: kind, Object: object, Details: details}
}

// actionAuditDetails are the facts recorded of a created action: what it
// is, and who signed it (the fingerprints whose signatures verified).
func actionAuditDetails(act *action.Action, checked *action.Checked, signers []string) map[string]string {
	mods := make([]string, 0, len(act.Operations))
	for _, op := range act.Operations {
		mods = append(mods, op.Module)
	}
	sum := sha256.Sum256(checked.Encoding())
	return map[string]string{
		"name":        act.Name,
		"target":      act.Target,
		"modules":     strings.Join(mods, ","),
		"signers":     strings.Join(signers, ","),
		"signed":      hex.EncodeToString(sum[:]), // SHA-256 of the signed encoding
		"validfrom":   act.ValidFrom.UTC().Format(time.RFC3339),
		"expireafter": act.ExpireAfter.UTC().Format(time.RFC3339),
	}
}

// InvestigatorCreateRecord is the audit record of adding inv, by actor
// (audit.ActorServer when the server adds its own administrator).
func InvestigatorCreateRecord(inv action.Investigator, actor string) audit.Record {
	return audit.Record{Actor: actor, Kind: audit.KindInvestigatorCreate, Object: inv.Fingerprint,
		Details: map[string]string{"name": inv.Name, "permissions": strings.Join(inv.Permissions, ","), "status": inv.Status}}
}

// auditLaunch records that an action was fanned out to n agents.
func (a *API) auditLaunch(r *http.Request, id uint64, n int) {
	rec := a.auditRecord(r, audit.KindActionLaunch, strconv.FormatUint(id, 10), map[string]string{"commands": strconv.Itoa(n)})
	if _, err := a.cfg.Store.AppendAudit(context.WithoutCancel(r.Context()), rec); err != nil {
		a.log.Error("recording a launch in the audit log failed", "action", id, "err", err)
	}
}

// auditEnroll records that agent ag enrolled for the first time with key
// pub. An agent enrolls again at every start, with the same key (its ID is
// derived from it): only the first enrollment of an identity is recorded,
// since it is the one that gives the fleet a new member. Like a launch, it
// is appended after the change; a failure is logged.
func (a *API) auditEnroll(r *http.Request, ag action.Agent, pub []byte) {
	sum := sha256.Sum256(pub)
	rec := audit.Record{Time: a.cfg.Now(), Actor: audit.ActorAgentPrefix + ag.ID, Kind: audit.KindAgentEnroll, Object: ag.ID,
		Details: map[string]string{"name": ag.Name, "publickey": hex.EncodeToString(sum[:]), "source": a.requestSource(r)}}
	if _, err := a.cfg.Store.AppendAudit(context.WithoutCancel(r.Context()), rec); err != nil {
		a.log.Error("recording an enrollment in the audit log failed", "agent", ag.ID, "err", err)
	}
}

// requestSource is the client address of r as the audit log records it
// (clientAddr, whole).
func (a *API) requestSource(r *http.Request) string {
	if addr, ok := clientAddr(r, a.cfg.TrustedProxies); ok {
		return addr.String()
	}
	return r.RemoteAddr
}

// AuditPage is the answer of GET /audit: entries after the asked sequence
// number, oldest first, and the after= of the next page (0 at the end).
type AuditPage struct {
	Entries []audit.Entry `json:"entries"`
	Next    uint64        `json:"next"`
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	inv := requestInvestigator(r)
	if !hasPermission(inv, PermAuditRead) && !hasPermission(inv, PermInvestigatorAdmin) {
		if id := requestAPIKey(r); id != "" {
			return fmt.Errorf("%w: API key %s of investigator %q lacks permission %s", errForbidden, id, inv.Name, PermAuditRead)
		}
		return fmt.Errorf("%w: investigator %q lacks permission %s", errForbidden, inv.Name, PermAuditRead)
	}
	limit, err := queryInt(r, "limit", maxAuditLimit, maxAuditLimit)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = maxAuditLimit
	}
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			return badRequest("bad_request", "after=%q is not a sequence number", s)
		}
	}
	es, err := a.cfg.Store.AuditLog(r.Context(), after, limit)
	if err != nil {
		return err
	}
	page := AuditPage{Entries: es}
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	if len(es) == limit {
		page.Next = es[len(es)-1].Seq
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
