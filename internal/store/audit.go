package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/migplatform/mig/internal/audit"
)

// MaxAuditPage bounds the entries one AuditLog call returns.
const MaxAuditPage = 1000

// auditCtxKey carries the audit records of a change (WithAudit).
type auditCtxKey struct{}

// WithAudit returns ctx carrying rec, to be appended to the audit log in the
// same transaction as the change a store method makes with that context.
// The methods that do so say it (CreateInvestigator, SetInvestigatorStatus,
// CreateAPIKey, RevokeAPIKey, CreateAction); the others ignore it. Records
// accumulate when WithAudit is called again on the result.
func WithAudit(ctx context.Context, rec audit.Record) context.Context {
	prev := AuditRecords(ctx)
	recs := make([]audit.Record, 0, len(prev)+1)
	recs = append(append(recs, prev...), rec)
	return context.WithValue(ctx, auditCtxKey{}, recs)
}

// WithoutAudit returns ctx without the records WithAudit put in it, for a
// method that must not append them.
func WithoutAudit(ctx context.Context) context.Context {
	if len(AuditRecords(ctx)) == 0 {
		return ctx
	}
	return context.WithValue(ctx, auditCtxKey{}, []audit.Record(nil))
}

// AuditRecords returns the records WithAudit put in ctx.
func AuditRecords(ctx context.Context) []audit.Record {
	recs, _ := ctx.Value(auditCtxKey{}).([]audit.Record)
	return recs
}

// AuditPageSize returns the number of entries to read for a limit: at most
// MaxAuditPage, and MaxAuditPage for 0.
func AuditPageSize(limit int) int {
	if limit <= 0 || limit > MaxAuditPage {
		return MaxAuditPage
	}
	return limit
}

// EncodeAuditDetails returns an entry's details as the JSON object stores
// keep ("{}" for none).
func EncodeAuditDetails(e audit.Entry) (string, error) {
	d := e.Details
	if d == nil {
		d = map[string]string{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("audit entry %d: details: %w", e.Seq, err)
	}
	return string(b), nil
}

// DecodeAuditDetails reads details kept by EncodeAuditDetails; an empty
// object is nil.
func DecodeAuditDetails(seq uint64, s string) (map[string]string, error) {
	var d map[string]string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("audit entry %d: details: %w", seq, err)
	}
	if len(d) == 0 {
		d = nil
	}
	return d, nil
}
