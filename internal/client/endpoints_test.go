package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/migplatform/mig/internal/action"
)

// TestEndpoints checks that every method sends the request docs/API.md
// describes and decodes its answer.
func TestEndpoints(t *testing.T) {
	vf := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		call       func(ctx context.Context, c *Client) (any, error)
		wantMethod string
		wantURI    string
		wantBody   string // JSON, compared semantically; empty: no body
		wantAuth   bool
		status     int
		answer     string
		want       any
	}{
		{
			name:       "health",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Health(ctx) },
			wantMethod: "GET", wantURI: "/api/v1/health",
			answer: `{"status":"ok","version":"1.2.3"}`,
			want:   Health{Status: "ok", Version: "1.2.3"},
		},
		{
			name: "create action",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateAction(ctx, &action.Action{ID: 9, Name: "n", Target: "status='online'", ValidFrom: vf,
					ExpireAfter: vf.Add(time.Minute), Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"a":1}`)}},
					PGPSignatures: []string{"sig"}, SyntaxVersion: 2})
			},
			wantMethod: "POST", wantURI: "/api/v1/actions", wantAuth: true,
			wantBody: `{"id":9,"name":"n","target":"status='online'","description":{},"threat":{},"validfrom":"2026-01-02T03:04:05Z","expireafter":"2026-01-02T03:05:05Z","operations":[{"module":"file","parameters":{"a":1}}],"pgpsignatures":["sig"],"syntaxversion":2}`,
			status:   201,
			answer:   `{"id":9,"name":"n","status":"pending","counters":{"sent":0,"done":0}}`,
			want:     &action.Action{ID: 9, Name: "n", Status: "pending"},
		},
		{
			name:       "action",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Action(ctx, 77) },
			wantMethod: "GET", wantURI: "/api/v1/actions/77", wantAuth: true,
			answer: `{"id":77,"name":"x","status":"inflight","counters":{"sent":3,"done":1,"success":1,"inflight":2}}`,
			want:   &action.Action{ID: 77, Name: "x", Status: "inflight", Counters: action.Counters{Sent: 3, Done: 1, Success: 1, InFlight: 2}},
		},
		{
			name:       "actions",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Actions(ctx, 10, 20) },
			wantMethod: "GET", wantURI: "/api/v1/actions?limit=10&offset=20", wantAuth: true,
			answer: `{"actions":[{"id":2,"name":"b"},{"id":1,"name":"a"}]}`,
			want:   []action.Action{{ID: 2, Name: "b"}, {ID: 1, Name: "a"}},
		},
		{
			name: "commands",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Commands(ctx, 5, CommandsQuery{Status: "success", Found: true, After: 10, Limit: 2, NoResults: true})
			},
			wantMethod: "GET", wantURI: "/api/v1/actions/5/commands?after=10&found=true&limit=2&results=false&status=success", wantAuth: true,
			answer: `{"commands":[{"id":11,"agentid":"a","agentname":"h","status":"success","action":{"name":"","target":"","validfrom":"0001-01-01T00:00:00Z","expireafter":"0001-01-01T00:00:00Z","operations":null}}],"next":11}`,
			want:   CommandsPage{Commands: []action.Command{{ID: 11, AgentID: "a", AgentName: "h", Status: "success"}}, Next: 11},
		},
		{
			name:       "command",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Command(ctx, 12) },
			wantMethod: "GET", wantURI: "/api/v1/commands/12", wantAuth: true,
			answer: `{"id":12,"agentid":"a","status":"failed","code":"module_failed","error":"exit 3"}`,
			want:   &action.Command{ID: 12, AgentID: "a", Status: "failed", Code: "module_failed", Error: "exit 3"},
		},
		{
			name: "agents",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Agents(ctx, "name LIKE '%db%'", 100, "abc")
			},
			wantMethod: "GET", wantURI: "/api/v1/agents?after=abc&limit=100&target=name+LIKE+%27%25db%25%27", wantAuth: true,
			answer: `{"agents":[{"id":"abd","name":"db1","queueloc":"","mode":"daemon","version":"1","pid":3,"environment":{"os":"linux","arch":"amd64","isproxied":false}}],"next":""}`,
			want:   AgentsPage{Agents: []action.Agent{{ID: "abd", Name: "db1", Mode: "daemon", Version: "1", PID: 3, Environment: action.Environment{OS: "linux", Arch: "amd64"}}}},
		},
		{
			name:       "count agents",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.CountAgents(ctx, "status='online'") },
			wantMethod: "GET", wantURI: "/api/v1/agents/count?target=status%3D%27online%27", wantAuth: true,
			answer: `{"count":12}`,
			want:   12,
		},
		{
			name:       "dashboard",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Dashboard(ctx) },
			wantMethod: "GET", wantURI: "/api/v1/dashboard", wantAuth: true,
			answer: `{"agents":{"online":3,"idle":2,"offline":1},"actions":[{"id":4,"name":"d"}]}`,
			want:   Dashboard{Agents: AgentCounts{Online: 3, Idle: 2, Offline: 1}, Actions: []action.Action{{ID: 4, Name: "d"}}},
		},
		{
			name:       "investigators",
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Investigators(ctx) },
			wantMethod: "GET", wantURI: "/api/v1/investigators", wantAuth: true,
			answer: `{"investigators":[{"id":1,"name":"Alice","pgpfingerprint":"AB","status":"active","permissions":["action.create"]}]}`,
			want:   []action.Investigator{{ID: 1, Name: "Alice", Fingerprint: "AB", Status: "active", Permissions: []string{"action.create"}}},
		},
		{
			name: "create investigator",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateInvestigator(ctx, "Bob", "-----BEGIN PGP PUBLIC KEY BLOCK-----", []string{"action.read"})
			},
			wantMethod: "POST", wantURI: "/api/v1/investigators", wantAuth: true,
			wantBody: `{"name":"Bob","publickey":"-----BEGIN PGP PUBLIC KEY BLOCK-----","permissions":["action.read"]}`,
			status:   201,
			answer:   `{"id":2,"name":"Bob","pgpfingerprint":"CD","status":"active","permissions":["action.read"]}`,
			want:     &action.Investigator{ID: 2, Name: "Bob", Fingerprint: "CD", Status: "active", Permissions: []string{"action.read"}},
		},
		{
			name: "disable investigator",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.SetInvestigatorStatus(ctx, 2, action.InvestigatorDisabled)
			},
			wantMethod: "POST", wantURI: "/api/v1/investigators/2/status", wantAuth: true,
			wantBody: `{"status":"disabled"}`,
			answer:   `{}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotMethod, gotURI, gotAuth, gotBody string
			c, _, _ := newTLSClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotMethod, gotURI, gotAuth = r.Method, r.URL.RequestURI(), r.Header.Get("Authorization")
				b, _ := io.ReadAll(r.Body)
				gotBody = string(b)
				status := tt.status
				if status == 0 {
					status = 200
				}
				w.WriteHeader(status)
				w.Write([]byte(tt.answer))
			}))
			got, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if gotMethod != tt.wantMethod || gotURI != tt.wantURI {
				t.Errorf("request: got %s %s, want %s %s", gotMethod, gotURI, tt.wantMethod, tt.wantURI)
			}
			if hasAuth := gotAuth != ""; hasAuth != tt.wantAuth {
				t.Errorf("Authorization header: got %q, want one: %v", gotAuth, tt.wantAuth)
			}
			if tt.wantBody != "" {
				var gb, wb any
				if err := json.Unmarshal([]byte(gotBody), &gb); err != nil {
					t.Fatalf("request body %q is not JSON: %v", gotBody, err)
				}
				json.Unmarshal([]byte(tt.wantBody), &wb)
				if diff := cmp.Diff(wb, gb); diff != "" {
					t.Errorf("request body (-want +got):\n%s", diff)
				}
			} else if gotBody != "" {
				t.Errorf("request body: got %q, want none", gotBody)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}
		})
	}
}
