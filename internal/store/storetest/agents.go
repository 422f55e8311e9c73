package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// fleet returns agents with varied attributes; their heartbeats are
// relative to now: a01, a02, a05 and a08 recent, a03 and a06 ten minutes
// old, a04 two hours and a07 three hours.
func fleet(now time.Time) []action.Agent {
	ag := func(id, name, queueloc, mode, os, arch string, pid int, age time.Duration, tags map[string]string) action.Agent {
		return action.Agent{
			ID: id, Name: name, QueueLoc: queueloc, Mode: mode, Version: "20250314-0.1." + id, PID: pid,
			StartTime:     now.Add(-24 * time.Hour),
			HeartbeatTime: now.Add(-age),
			Environment: action.Environment{
				Init: "systemd", Ident: "Debian 12", OS: os, Arch: arch,
				Addresses: []string{"10.0.0." + id[1:] + "/24"}, PublicIP: "203.0.113.7",
				Modules: []string{"file", "netstat"},
			},
			Tags: tags,
		}
	}
	return []action.Agent{
		ag("a01", "db1.prod.example.com", "linux.db1.prod", action.ModeDaemon, "linux", "amd64", 101, 0, map[string]string{"operator": "IT"}),
		ag("a02", "web1.prod.example.com", "linux.web1.prod", action.ModeDaemon, "linux", "arm64", 2002, time.Second, map[string]string{"operator": "Sec"}),
		ag("a03", "mac-alice", "darwin.mac-alice", action.ModeCheckIn, "darwin", "arm64", 303, 10*time.Minute, map[string]string{"operator": "IT"}),
		ag("a04", "win-db", "windows.win-db", action.ModeDaemon, "windows", "amd64", 4004, 2*time.Hour, nil),
		ag("a05", "db2.dev", "linux.db2.dev", action.ModeCheckIn, "linux", "amd64", 505, 0, map[string]string{"operator": "IT", "env": "dev"}),
		ag("a06", "build_1", "linux.build_1", action.ModeDaemon, "linux", "amd64", 6006, 10*time.Minute+500*time.Millisecond, nil),
		ag("a07", "mac-bob", "darwin.mac-bob", action.ModeDaemon, "darwin", "amd64", 707, 3*time.Hour, map[string]string{"operator": "Sec"}),
		ag("a08", "100%db", "linux.x", action.ModeDaemon, "linux", "amd64", 8008, 0, map[string]string{"team": "o'brien"}),
	}
}

// agentIDs returns the IDs of agents, in order.
func agentIDs(agents []action.Agent) []string {
	var ids []string
	for _, a := range agents {
		ids = append(ids, a.ID)
	}
	return ids
}

func testAgentUpsert(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC()
	agents := fleet(now)
	// Upsert in two calls, out of order, to check ordering by id.
	if err := s.UpsertAgents(ctx, []action.Agent{agents[4], agents[2], agents[0]}); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	if err := s.UpsertAgents(ctx, append(slices.Clone(agents[5:]), agents[1], agents[3])); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	got, err := s.Agents(ctx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	want := slices.Clone(agents)
	for i := range want {
		want[i].Status = action.AgentOnline
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Agents after upsert (-want +got):\n%s", d)
	}

	// An update replaces every attribute; a zero heartbeat time means now.
	changed := agents[0]
	changed.Name = "db1-renamed"
	changed.Tags = map[string]string{"operator": "Sec"}
	changed.Environment.OS = "freebsd"
	changed.PID = 9
	changed.HeartbeatTime = time.Time{}
	before := time.Now()
	if err := s.UpsertAgents(ctx, []action.Agent{changed}); err != nil {
		t.Fatalf("UpsertAgents(changed): %v", err)
	}
	got, err = s.Agents(ctx, store.AgentQuery{Limit: 1})
	if err != nil {
		t.Fatalf("Agents(limit 1): %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Agents(limit 1) returned %d agents, want 1", len(got))
	}
	if hb := got[0].HeartbeatTime; hb.Before(before.Add(-time.Second)) || hb.After(time.Now().Add(time.Second)) {
		t.Errorf("heartbeat after upsert with zero time = %v, want about now", hb)
	}
	changed.HeartbeatTime = got[0].HeartbeatTime
	changed.Status = action.AgentOnline
	if d := diff(changed, got[0]); d != "" {
		t.Errorf("agent after update (-want +got):\n%s", d)
	}
	n, err := s.CountAgents(ctx, nil)
	if err != nil {
		t.Fatalf("CountAgents(nil): %v", err)
	}
	if n != len(agents) {
		t.Errorf("CountAgents(nil) = %d, want %d", n, len(agents))
	}

	// Paging by id visits every agent once, in order.
	for _, limit := range []int{1, 3, 8, 100} {
		var ids []string
		after := ""
		for pages := 0; pages < 20; pages++ {
			page, err := s.Agents(ctx, store.AgentQuery{Limit: limit, After: after})
			if err != nil {
				t.Fatalf("Agents(limit %d, after %q): %v", limit, after, err)
			}
			if len(page) > limit {
				t.Fatalf("Agents(limit %d) returned %d agents", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			ids = append(ids, agentIDs(page)...)
			after = page[len(page)-1].ID
		}
		if d := diff(agentIDs(agents), ids); d != "" {
			t.Errorf("paging with limit %d (-want +got):\n%s", limit, d)
		}
	}

	// A large batch in one call, with a duplicate ID inside it: the last
	// one wins.
	var many []action.Agent
	for i := range 3000 {
		a := agents[i%len(agents)]
		a.ID = fmt.Sprintf("bulk-%05d", i)
		many = append(many, a)
	}
	dup := many[0]
	dup.Name = "last-wins"
	many = append(many, dup)
	if err := s.UpsertAgents(ctx, many); err != nil {
		t.Fatalf("UpsertAgents(%d agents): %v", len(many), err)
	}
	if n, err := s.CountAgents(ctx, nil); err != nil || n != len(agents)+3000 {
		t.Errorf("CountAgents after bulk = %d, %v; want %d", n, err, len(agents)+3000)
	}
	first, err := s.Agents(ctx, store.AgentQuery{After: "bulk-", Limit: 1})
	if err != nil || len(first) != 1 {
		t.Fatalf("Agents(after bulk-) = %v, %v", first, err)
	}
	if first[0].Name != "last-wins" {
		t.Errorf("duplicate in one batch: name = %q, want %q", first[0].Name, "last-wins")
	}
}

func testAgentLiveness(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC()
	agents := fleet(now)
	if err := s.UpsertAgents(ctx, agents); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	statuses := func() map[string]string {
		t.Helper()
		all, err := s.Agents(ctx, store.AgentQuery{})
		if err != nil {
			t.Fatalf("Agents: %v", err)
		}
		out := map[string]string{}
		for _, a := range all {
			out[a.ID] = a.Status
		}
		return out
	}
	onl, idl, off := action.AgentOnline, action.AgentIdle, action.AgentOffline
	steps := []struct {
		name        string
		onlineSince time.Time
		idleSince   time.Time
		upsert      []string
		want        map[string]string
		wantCounts  map[string]int
	}{
		{
			name:        "nobody stale",
			onlineSince: now.Add(-4 * time.Hour), idleSince: now.Add(-5 * time.Hour),
			want:       map[string]string{"a01": onl, "a02": onl, "a03": onl, "a04": onl, "a05": onl, "a06": onl, "a07": onl, "a08": onl},
			wantCounts: map[string]int{onl: 8, idl: 0, off: 0},
		},
		{
			name: "the boundary is exclusive: a heartbeat at onlineSince stays online",
			// a06's heartbeat is exactly 10m0.5s old.
			onlineSince: now.Add(-10*time.Minute - 500*time.Millisecond), idleSince: now.Add(-150 * time.Minute),
			want:       map[string]string{"a01": onl, "a02": onl, "a03": onl, "a04": idl, "a05": onl, "a06": onl, "a07": off, "a08": onl},
			wantCounts: map[string]int{onl: 6, idl: 1, off: 1},
		},
		{
			name:        "five minutes and one hour",
			onlineSince: now.Add(-5 * time.Minute), idleSince: now.Add(-time.Hour),
			want:       map[string]string{"a01": onl, "a02": onl, "a03": idl, "a04": off, "a05": onl, "a06": idl, "a07": off, "a08": onl},
			wantCounts: map[string]int{onl: 4, idl: 2, off: 2},
		},
		{
			name:        "heartbeats bring agents back online",
			onlineSince: now.Add(-5 * time.Minute), idleSince: now.Add(-time.Hour),
			upsert:     []string{"a04", "a03"},
			want:       map[string]string{"a01": onl, "a02": onl, "a03": onl, "a04": onl, "a05": onl, "a06": idl, "a07": off, "a08": onl},
			wantCounts: map[string]int{onl: 6, idl: 1, off: 1},
		},
	}
	for _, st := range steps {
		if err := s.MarkAgents(ctx, st.onlineSince, st.idleSince); err != nil {
			t.Fatalf("%s: MarkAgents: %v", st.name, err)
		}
		if len(st.upsert) > 0 {
			var back []action.Agent
			for _, a := range agents {
				if slices.Contains(st.upsert, a.ID) {
					a.HeartbeatTime = now
					back = append(back, a)
				}
			}
			if err := s.UpsertAgents(ctx, back); err != nil {
				t.Fatalf("%s: UpsertAgents: %v", st.name, err)
			}
		}
		if d := diff(st.want, statuses()); d != "" {
			t.Errorf("%s: statuses (-want +got):\n%s", st.name, d)
		}
		counts, err := s.AgentStatusCounts(ctx)
		if err != nil {
			t.Fatalf("%s: AgentStatusCounts: %v", st.name, err)
		}
		for k, v := range counts {
			if v == 0 {
				delete(counts, k)
			}
		}
		for k, v := range st.wantCounts {
			if v == 0 {
				delete(st.wantCounts, k)
			}
		}
		if d := diff(st.wantCounts, counts); d != "" {
			t.Errorf("%s: AgentStatusCounts (-want +got):\n%s", st.name, d)
		}
	}
}

func testAgentTargets(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	// Whole seconds, so that heartbeat comparisons at a second boundary are
	// checked against stored fractions.
	now := time.Now().UTC().Truncate(time.Second)
	if err := s.UpsertAgents(ctx, fleet(now)); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	if err := s.MarkAgents(ctx, now.Add(-5*time.Minute), now.Add(-time.Hour)); err != nil {
		t.Fatalf("MarkAgents: %v", err)
	}
	stored, err := s.Agents(ctx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	tenMinAgo := now.Add(-10 * time.Minute).Format(time.RFC3339)
	tests := []struct {
		target string
		want   []string
	}{
		{`TRUE`, []string{"a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08"}},
		{`status='online'`, []string{"a01", "a02", "a05", "a08"}},
		{`status='idle'`, []string{"a03", "a06"}},
		{`status IN ('idle','offline')`, []string{"a03", "a04", "a06", "a07"}},
		{`name LIKE '%db%'`, []string{"a01", "a04", "a05", "a08"}},
		{`name LIKE '%DB%'`, nil},
		{`name LIKE 'build\_1'`, []string{"a06"}},
		{`name LIKE 'build_1'`, []string{"a06"}},
		{`name LIKE '100\%%'`, []string{"a08"}},
		{`name NOT LIKE '%.%'`, []string{"a03", "a04", "a06", "a07", "a08"}},
		{`environment->>'os' IN ('linux','darwin') AND mode='daemon'`, []string{"a01", "a02", "a06", "a07", "a08"}},
		{`environment->>'os'='linux'`, []string{"a01", "a02", "a05", "a06", "a08"}},
		{`environment->>'arch'='arm64' AND environment->>'ident'='Debian 12'`, []string{"a02", "a03"}},
		{`environment->>'isproxied'='false'`, []string{"a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08"}},
		{`tags->>'operator'='IT'`, []string{"a01", "a03", "a05"}},
		{`tags->>'operator'!='IT'`, []string{"a02", "a07"}},
		{`tags->>'operator' IS NULL`, []string{"a04", "a06", "a08"}},
		{`tags->>'operator' IS NOT NULL`, []string{"a01", "a02", "a03", "a05", "a07"}},
		{`tags->>'team'='o''brien'`, []string{"a08"}},
		{`queueloc LIKE 'linux.%'`, []string{"a01", "a02", "a05", "a06", "a08"}},
		{`id IN ('a01','a04','zzz')`, []string{"a01", "a04"}},
		{`id NOT IN ('a01','a04')`, []string{"a02", "a03", "a05", "a06", "a07", "a08"}},
		{`NOT environment->>'os'='linux'`, []string{"a03", "a04", "a07"}},
		{`NOT (tags->>'operator'='IT')`, []string{"a02", "a07"}},
		{`environment->>'os'='windows' OR tags->>'operator'='Sec'`, []string{"a02", "a04", "a07"}},
		{`(mode='checkin' OR environment->>'arch'='arm64') AND NOT status='offline'`, []string{"a02", "a03", "a05"}},
		{`mode='checkin' OR (environment->>'arch'='arm64' AND status='offline')`, []string{"a03", "a05"}},
		{`pid > 1000`, []string{"a02", "a04", "a06", "a08"}},
		{`pid <= 505 AND pid >= 303`, []string{"a03", "a05"}},
		{`pid = 101`, []string{"a01"}},
		{`version = '20250314-0.1.a07'`, []string{"a07"}},
		{`heartbeattime < '` + tenMinAgo + `'`, []string{"a04", "a06", "a07"}},
		{`heartbeattime <= '` + tenMinAgo + `'`, []string{"a03", "a04", "a06", "a07"}},
		{`heartbeattime >= '` + tenMinAgo + `'`, []string{"a01", "a02", "a03", "a05", "a08"}},
		{`starttime < '` + now.Format(time.RFC3339) + `'`, []string{"a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08"}},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.target)
		if err != nil {
			t.Errorf("target.Parse(%q): %v", tt.target, err)
			continue
		}
		got, err := s.Agents(ctx, store.AgentQuery{Target: e})
		if err != nil {
			t.Errorf("Agents(%q): %v", tt.target, err)
			continue
		}
		if d := diff(tt.want, agentIDs(got)); d != "" {
			t.Errorf("Agents(%q) (-want +got):\n%s", tt.target, d)
		}
		var evaluated []string
		for i := range stored {
			if evalTarget(e, &stored[i]) {
				evaluated = append(evaluated, stored[i].ID)
			}
		}
		if d := diff(agentIDs(got), evaluated); d != "" {
			t.Errorf("target %q: store and target.Eval disagree (-store +eval):\n%s", tt.target, d)
		}
		n, err := s.CountAgents(ctx, e)
		if err != nil {
			t.Errorf("CountAgents(%q): %v", tt.target, err)
		} else if n != len(tt.want) {
			t.Errorf("CountAgents(%q) = %d, want %d", tt.target, n, len(tt.want))
		}
		if len(tt.want) > 1 {
			page, err := s.Agents(ctx, store.AgentQuery{Target: e, After: tt.want[0], Limit: 1})
			if err != nil {
				t.Errorf("Agents(%q, after %s, limit 1): %v", tt.target, tt.want[0], err)
			} else if d := diff(tt.want[1:2], agentIDs(page)); d != "" {
				t.Errorf("Agents(%q, after %s, limit 1) (-want +got):\n%s", tt.target, tt.want[0], d)
			}
		}
	}
}

// evalTarget evaluates e on a as the agent does.
func evalTarget(e target.Expr, a *action.Agent) bool {
	return target.Eval(e, a)
}

func testAgentCredentials(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	if _, err := s.AgentCredential(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AgentCredential(unknown) error = %v, want ErrNotFound", err)
	}
	c1 := store.AgentCredential{AgentID: "a01", PublicKey: []byte{1, 2, 3, 0, 255}, PasswordHash: []byte("hash-1"), EnrolledAt: baseTime}
	c2 := store.AgentCredential{AgentID: "a01", PublicKey: []byte{9, 9}, PasswordHash: []byte("hash-2"), EnrolledAt: baseTime.Add(time.Hour)}
	other := store.AgentCredential{AgentID: "a02", PublicKey: []byte{7}, PasswordHash: []byte("hash-3"), EnrolledAt: baseTime}
	for _, c := range []store.AgentCredential{c1, other} {
		if err := s.SaveAgentCredential(ctx, c); err != nil {
			t.Fatalf("SaveAgentCredential(%s): %v", c.AgentID, err)
		}
	}
	got, err := s.AgentCredential(ctx, "a01")
	if err != nil {
		t.Fatalf("AgentCredential(a01): %v", err)
	}
	if d := diff(c1, got); d != "" {
		t.Errorf("AgentCredential(a01) (-want +got):\n%s", d)
	}
	if err := s.SaveAgentCredential(ctx, c2); err != nil {
		t.Fatalf("SaveAgentCredential(replacement): %v", err)
	}
	got, err = s.AgentCredential(ctx, "a01")
	if err != nil {
		t.Fatalf("AgentCredential(a01): %v", err)
	}
	if d := diff(c2, got); d != "" {
		t.Errorf("AgentCredential(a01) after re-enrolment (-want +got):\n%s", d)
	}
	got, err = s.AgentCredential(ctx, "a02")
	if err != nil {
		t.Fatalf("AgentCredential(a02): %v", err)
	}
	if d := diff(other, got); d != "" {
		t.Errorf("AgentCredential(a02) (-want +got):\n%s", d)
	}
}

func testInvestigators(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	alice := action.Investigator{
		Name: "Alice", Fingerprint: "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
		PublicKey:   "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n",
		Status:      action.InvestigatorActive,
		Permissions: []string{"action.create", "action.read", "agent.read"},
		CreatedAt:   baseTime,
	}
	bob := action.Investigator{
		Name: "Bob", Fingerprint: "FFEEDDCCBBAA99887766554433221100FFEEDDCC",
		PublicKey: "bob's key", Status: action.InvestigatorActive,
		Permissions: []string{"investigator.admin"}, CreatedAt: baseTime.Add(time.Minute),
	}
	idA, err := s.CreateInvestigator(ctx, alice)
	if err != nil {
		t.Fatalf("CreateInvestigator(alice): %v", err)
	}
	idB, err := s.CreateInvestigator(ctx, bob)
	if err != nil {
		t.Fatalf("CreateInvestigator(bob): %v", err)
	}
	if idA <= 0 || idB <= 0 || idA == idB {
		t.Fatalf("investigator IDs = %d, %d; want distinct positive IDs", idA, idB)
	}
	alice.ID, bob.ID = idA, idB
	want := []action.Investigator{alice, bob}
	if idB < idA {
		want = []action.Investigator{bob, alice}
	}
	got, err := s.Investigators(ctx)
	if err != nil {
		t.Fatalf("Investigators: %v", err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Investigators (-want +got):\n%s", d)
	}

	dup := bob
	dup.Name = "Mallory"
	dup.Fingerprint = strings.ToLower(bob.Fingerprint)
	for _, fp := range []string{bob.Fingerprint, strings.ToLower(bob.Fingerprint)} {
		dup.Fingerprint = fp
		if _, err := s.CreateInvestigator(ctx, dup); !errors.Is(err, store.ErrExists) {
			t.Errorf("CreateInvestigator(duplicate fingerprint %s) error = %v, want ErrExists", fp, err)
		}
	}

	for _, fp := range []string{alice.Fingerprint, strings.ToLower(alice.Fingerprint)} {
		inv, err := s.InvestigatorByFingerprint(ctx, fp)
		if err != nil {
			t.Fatalf("InvestigatorByFingerprint(%s): %v", fp, err)
		}
		if d := diff(alice, inv); d != "" {
			t.Errorf("InvestigatorByFingerprint(%s) (-want +got):\n%s", fp, d)
		}
	}
	if _, err := s.InvestigatorByFingerprint(ctx, "0000000000000000000000000000000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InvestigatorByFingerprint(unknown) error = %v, want ErrNotFound", err)
	}

	if err := s.SetInvestigatorStatus(ctx, idA, action.InvestigatorDisabled); err != nil {
		t.Fatalf("SetInvestigatorStatus(disabled): %v", err)
	}
	inv, err := s.InvestigatorByFingerprint(ctx, alice.Fingerprint)
	if err != nil {
		t.Fatalf("InvestigatorByFingerprint: %v", err)
	}
	if inv.Status != action.InvestigatorDisabled {
		t.Errorf("status after disabling = %q, want %q", inv.Status, action.InvestigatorDisabled)
	}
	if err := s.SetInvestigatorStatus(ctx, idA, action.InvestigatorActive); err != nil {
		t.Fatalf("SetInvestigatorStatus(active): %v", err)
	}
	if inv, err := s.InvestigatorByFingerprint(ctx, alice.Fingerprint); err != nil || inv.Status != action.InvestigatorActive {
		t.Errorf("status after re-activating = %q, %v; want %q", inv.Status, err, action.InvestigatorActive)
	}
	if err := s.SetInvestigatorStatus(ctx, idA+idB+100, action.InvestigatorDisabled); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetInvestigatorStatus(unknown) error = %v, want ErrNotFound", err)
	}
	if err := s.SetInvestigatorStatus(ctx, idA, "superuser"); err == nil {
		t.Errorf("SetInvestigatorStatus(%q) succeeded, want an error", "superuser")
	}
	if bob2, err := s.InvestigatorByFingerprint(ctx, bob.Fingerprint); err != nil || bob2.Status != action.InvestigatorActive {
		t.Errorf("other investigator's status = %q, %v; want it unchanged", bob2.Status, err)
	}
}
