package client

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/audit"
)

// TestEachAuditEntry reads a log of three pages and checks the queries.
func TestEachAuditEntry(t *testing.T) {
	var log []audit.Entry
	var head audit.Head
	for i := 0; i < 5; i++ {
		e := audit.Next(head, audit.Record{Actor: audit.ActorServer, Kind: audit.KindActionLaunch}, time.Now())
		log = append(log, e)
		head = audit.Head{Seq: e.Seq, Hash: e.Hash}
	}
	var queries []string
	c, _, _ := newTLSClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		after := map[string]int{"": 0, "after=2": 2, "after=4": 4}[r.URL.RawQuery]
		end := min(after+2, len(log))
		next := uint64(0)
		if end < len(log) || after == 2 {
			next = uint64(end)
		}
		json.NewEncoder(w).Encode(map[string]any{"entries": log[after:end], "next": next})
	}))
	var v audit.Verifier
	n := 0
	if err := c.EachAuditEntry(t.Context(), 0, func(e audit.Entry) error { n++; return v.Add(e) }); err != nil {
		t.Fatal(err)
	}
	if n != 5 || v.Head() != head {
		t.Errorf("read %d entries up to %v, want 5 up to %v", n, v.Head(), head)
	}
	if len(queries) != 3 || queries[1] != "after=2" || queries[2] != "after=4" {
		t.Errorf("queries %q", queries)
	}
}
