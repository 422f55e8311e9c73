package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/migplatform/mig/internal/audit"
)

// AuditLog reads one page of the server's audit log (permission
// audit.read or investigator.admin): up to limit entries (0: the server's
// page size) with sequence numbers after after, oldest first, and the
// after of the next page (0 when this was the last).
func (c *Client) AuditLog(ctx context.Context, after uint64, limit int) ([]audit.Entry, uint64, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Entries []audit.Entry `json:"entries"`
		Next    uint64        `json:"next"`
	}
	if err := c.do(ctx, http.MethodGet, "/audit", q, nil, &out, true); err != nil {
		return nil, 0, fmt.Errorf("reading the audit log: %w", err)
	}
	if out.Next != 0 && (len(out.Entries) == 0 || out.Next != out.Entries[len(out.Entries)-1].Seq) {
		return nil, 0, fmt.Errorf("%w: audit log page after %d: next %d is not its last entry", ErrBadResponse, after, out.Next)
	}
	return out.Entries, out.Next, nil
}

// EachAuditEntry reads the audit log from the entry after after to the
// newest, page by page, and calls fn with each entry in order, stopping at
// fn's first error.
func (c *Client) EachAuditEntry(ctx context.Context, after uint64, fn func(audit.Entry) error) error {
	for {
		es, next, err := c.AuditLog(ctx, after, 0)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		after = next
	}
}
