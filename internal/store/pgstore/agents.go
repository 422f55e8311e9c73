package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// agentCols are the agents table's columns, in the order scanAgent reads
// them.
const agentCols = `id, name, queueloc, mode, version, pid, status, heartbeattime, heartbeattime_ns,
	starttime, starttime_ns, environment::text, tags::text`

// UpsertAgents creates or updates every agent in one statement, with its
// heartbeat time (now when zero or outside the years 0000-9999) and status
// online. A start time outside those years is stored as zero. Of several
// entries for one agent in a batch, the last wins. An agent whose ID
// PostgreSQL's text cannot hold is left out with a warning; characters its
// other attributes cannot hold are replaced (see the package doc).
func (s *Store) UpsertAgents(ctx context.Context, agents []action.Agent) error {
	if len(agents) == 0 {
		return nil
	}
	for _, a := range agents {
		if a.ID == "" {
			return fmt.Errorf("upsert agent %q: empty id", a.Name)
		}
	}
	// The last entry of each agent, in ID order: rows are locked in the
	// same order by every server, so concurrent batches cannot deadlock.
	last := make(map[string]int, len(agents))
	for i, a := range agents {
		if !validText(a.ID) {
			s.logger.Warn("agent id cannot be stored, heartbeat ignored", "agent", pgText(a.ID))
			continue
		}
		last[a.ID] = i
	}
	ids := make([]string, 0, len(last))
	for id := range last {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	now := time.Now()
	n := len(ids)
	var (
		names, queuelocs, modes, versions = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pids                              = make([]int64, n)
		hbs, starts                       = make([]time.Time, n), make([]time.Time, n)
		hbNs, startNs                     = make([]int16, n), make([]int16, n)
		envs, tags                        = make([]string, n), make([]string, n)
	)
	for i, id := range ids {
		a := agents[last[id]]
		names[i], queuelocs[i], modes[i], versions[i] = pgText(a.Name), pgText(a.QueueLoc), pgText(a.Mode), pgText(a.Version)
		pids[i] = int64(a.PID)
		hb := storable(a.HeartbeatTime, now)
		if hb.IsZero() {
			hb = now
		}
		hbs[i], hbNs[i] = splitTime(hb)
		starts[i], startNs[i] = splitTime(storable(a.StartTime, time.Time{}))
		env, err := json.Marshal(jsonbEnvironment(a.Environment))
		if err != nil {
			return fmt.Errorf("upsert agent %s: environment: %w", id, err)
		}
		tj, err := json.Marshal(jsonbTags(a.Tags))
		if err != nil {
			return fmt.Errorf("upsert agent %s: tags: %w", id, err)
		}
		envs[i], tags[i] = string(env), string(tj)
	}
	err := s.inTx(ctx, "upsert agents", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO agents (id, name, queueloc, mode, version, pid, status,
			heartbeattime, heartbeattime_ns, starttime, starttime_ns, environment, tags)
			SELECT u.id, u.name, u.queueloc, u.mode, u.version, u.pid, $13,
				u.hb, u.hbns, u.st, u.stns, u.env::jsonb, u.tags::jsonb
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
				$7::timestamptz[], $8::int2[], $9::timestamptz[], $10::int2[], $11::text[], $12::text[])
				AS u(id, name, queueloc, mode, version, pid, hb, hbns, st, stns, env, tags)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, queueloc = excluded.queueloc,
				mode = excluded.mode, version = excluded.version, pid = excluded.pid, status = excluded.status,
				heartbeattime = excluded.heartbeattime, heartbeattime_ns = excluded.heartbeattime_ns,
				starttime = excluded.starttime, starttime_ns = excluded.starttime_ns,
				environment = excluded.environment, tags = excluded.tags`,
			ids, names, queuelocs, modes, versions, pids, hbs, hbNs, starts, startNs, envs, tags, action.AgentOnline)
		return err
	})
	if err != nil {
		return fmt.Errorf("upsert %d agents starting with %s: %w", n, firstOr(ids, "-"), err)
	}
	return nil
}

// firstOr returns the first element of ss, or def.
func firstOr(ss []string, def string) string {
	if len(ss) == 0 {
		return def
	}
	return ss[0]
}

// jsonbEnvironment returns e with every text as jsonb can hold it.
func jsonbEnvironment(e action.Environment) action.Environment {
	e.Init, e.Ident, e.OS, e.Arch = pgText(e.Init), pgText(e.Ident), pgText(e.OS), pgText(e.Arch)
	e.Proxy, e.PublicIP = pgText(e.Proxy), pgText(e.PublicIP)
	e.Addresses, e.Modules = pgTexts(e.Addresses), pgTexts(e.Modules)
	return e
}

// jsonbTags returns tags as jsonb can hold them; nil is an empty object.
func jsonbTags(tags map[string]string) map[string]string {
	clean := true
	for k, v := range tags {
		clean = clean && validText(k) && validText(v)
	}
	if clean && tags != nil {
		return tags
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[pgText(k)] = pgText(v)
	}
	return out
}

// MarkAgents sets agents whose last heartbeat is before onlineSince to idle,
// and before idleSince to offline, to the nanosecond.
func (s *Store) MarkAgents(ctx context.Context, onlineSince, idleSince time.Time) error {
	if idleSince.After(onlineSince) {
		return fmt.Errorf("mark agents: idle window start %s is after online window start %s",
			idleSince.UTC().Format(time.RFC3339Nano), onlineSince.UTC().Format(time.RFC3339Nano))
	}
	on, onNs := splitTime(onlineSince)
	idle, idleNs := splitTime(idleSince)
	err := s.inTx(ctx, "mark agents", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE agents SET status = $1
			WHERE (heartbeattime, heartbeattime_ns) < ($2, $3) AND (heartbeattime, heartbeattime_ns) >= ($4, $5)
			AND status <> $1`, action.AgentIdle, on, onNs, idle, idleNs); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE agents SET status = $1
			WHERE (heartbeattime, heartbeattime_ns) < ($2, $3) AND status <> $1`,
			action.AgentOffline, idle, idleNs); err != nil {
			return fmt.Errorf("offline: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark agents: %w", err)
	}
	return nil
}

// targetCond compiles a target to a condition over the agents table whose
// placeholders follow the arguments already in a; a nil target is every
// agent.
func targetCond(t target.Expr, a *args) (string, error) {
	if t == nil {
		return "true", nil
	}
	cond, targs, err := target.Compile(t, target.Postgres, len(*a)+1)
	if err != nil {
		return "", fmt.Errorf("compile target %q: %w", t.String(), err)
	}
	*a = append(*a, targs...)
	return "(" + cond + ")", nil
}

// agentWhere returns the WHERE clause (conditions, ORDER BY and LIMIT) of a
// query of the agents table that q selects, with its arguments.
func agentWhere(q store.AgentQuery) (string, args, error) {
	var a args
	cond, err := targetCond(q.Target, &a)
	if err != nil {
		return "", nil, err
	}
	where := ` WHERE ` + cond
	if q.WithoutCommandOf != 0 {
		aid, err := store.DBID("action", q.WithoutCommandOf)
		if err != nil {
			return "", nil, fmt.Errorf("query agents: %w", err)
		}
		// Not correlated: PostgreSQL hashes the action's agents once.
		where += ` AND id NOT IN (SELECT agent_id FROM commands WHERE action_id = ` + a.add(aid) + `)`
	}
	if q.After != "" {
		where += ` AND id > ` + a.add(pgText(q.After))
	}
	where += ` ORDER BY id`
	if q.Limit > 0 {
		where += ` LIMIT ` + a.add(q.Limit)
	}
	return where, a, nil
}

// Agents returns the agents matching q, ordered by id (byte-wise).
func (s *Store) Agents(ctx context.Context, q store.AgentQuery) ([]action.Agent, error) {
	where, a, err := agentWhere(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+agentCols+` FROM agents`+where, a...)
	if err != nil {
		return nil, fmt.Errorf("query agents: %w", err)
	}
	defer rows.Close()
	var out []action.Agent
	for rows.Next() {
		ag, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ag)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query agents: %w", err)
	}
	return out, nil
}

// AgentRefs returns the IDs and names of the agents matching q, ordered by
// id (byte-wise); only those two columns are read.
func (s *Store) AgentRefs(ctx context.Context, q store.AgentQuery) ([]store.AgentRef, error) {
	where, a, err := agentWhere(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM agents`+where, a...)
	if err != nil {
		return nil, fmt.Errorf("query agent ids: %w", err)
	}
	defer rows.Close()
	out := make([]store.AgentRef, 0, min(max(q.Limit, 0), 4096))
	for rows.Next() {
		var r store.AgentRef
		if err := rows.Scan(&r.ID, &r.Name); err != nil {
			return nil, fmt.Errorf("query agent ids: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query agent ids: %w", err)
	}
	return out, nil
}

// scanAgent reads one row of agentCols.
func scanAgent(rows pgx.Rows) (action.Agent, error) {
	var a action.Agent
	var pid int64
	var hb, st time.Time
	var hbNs, stNs int16
	var env, tags string
	if err := rows.Scan(&a.ID, &a.Name, &a.QueueLoc, &a.Mode, &a.Version, &pid, &a.Status,
		&hb, &hbNs, &st, &stNs, &env, &tags); err != nil {
		return a, fmt.Errorf("read agent: %w", err)
	}
	a.PID = int(pid)
	a.HeartbeatTime = joinTime(hb, hbNs)
	a.StartTime = joinTime(st, stNs)
	if err := json.Unmarshal([]byte(env), &a.Environment); err != nil {
		return a, fmt.Errorf("agent %s: environment: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(tags), &a.Tags); err != nil {
		return a, fmt.Errorf("agent %s: tags: %w", a.ID, err)
	}
	if len(a.Tags) == 0 {
		a.Tags = nil
	}
	return a, nil
}

// CountAgents returns how many agents match the target (nil: all).
func (s *Store) CountAgents(ctx context.Context, t target.Expr) (int, error) {
	var a args
	cond, err := targetCond(t, &a)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM agents WHERE `+cond, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count agents: %w", err)
	}
	return int(n), nil
}

// AgentStatusCounts returns the number of agents in each status; online,
// idle and offline are always present.
func (s *Store) AgentStatusCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, COUNT(*) FROM agents GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count agents by status: %w", err)
	}
	defer rows.Close()
	out := map[string]int{action.AgentOnline: 0, action.AgentIdle: 0, action.AgentOffline: 0}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count agents by status: %w", err)
		}
		out[status] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count agents by status: %w", err)
	}
	return out, nil
}

// SaveAgentCredential records an enrolled agent's identity, replacing any
// earlier one for the same agent.
func (s *Store) SaveAgentCredential(ctx context.Context, c store.AgentCredential) error {
	if c.AgentID == "" {
		return errors.New("save agent credential: empty agent id")
	}
	if !validText(c.AgentID) {
		return fmt.Errorf("save agent credential: agent id %q is not valid UTF-8 text", c.AgentID)
	}
	enrolled := c.EnrolledAt
	if enrolled.IsZero() {
		enrolled = time.Now()
	}
	ts, ns := splitTime(storable(enrolled, time.Now()))
	if _, err := s.pool.Exec(ctx, `INSERT INTO agent_credentials (agent_id, public_key, password_hash, enrolled_at, enrolled_at_ns)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (agent_id) DO UPDATE SET public_key = excluded.public_key,
			password_hash = excluded.password_hash, enrolled_at = excluded.enrolled_at,
			enrolled_at_ns = excluded.enrolled_at_ns`,
		c.AgentID, nonNil(c.PublicKey), nonNil(c.PasswordHash), ts, ns); err != nil {
		return fmt.Errorf("save credential of agent %s: %w", c.AgentID, err)
	}
	return nil
}

// nonNil returns b, or an empty slice for nil so that a NOT NULL bytea
// column accepts it.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// AgentCredential returns an enrolled agent's identity, or ErrNotFound.
func (s *Store) AgentCredential(ctx context.Context, agentID string) (store.AgentCredential, error) {
	c := store.AgentCredential{AgentID: agentID}
	if !validText(agentID) {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, store.ErrNotFound)
	}
	var enrolled time.Time
	var ns int16
	err := s.pool.QueryRow(ctx, `SELECT public_key, password_hash, enrolled_at, enrolled_at_ns
		FROM agent_credentials WHERE agent_id = $1`, agentID).Scan(&c.PublicKey, &c.PasswordHash, &enrolled, &ns)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, err)
	}
	c.EnrolledAt = joinTime(enrolled, ns)
	return c, nil
}

// CreateInvestigator adds an investigator (status active when empty) and
// returns its ID; ErrExists if the fingerprint is known. Fingerprints are
// stored upper-case.
func (s *Store) CreateInvestigator(ctx context.Context, inv action.Investigator) (int64, error) {
	inv, pj, err := store.PrepareInvestigator(inv, time.Now())
	if err != nil {
		return 0, err
	}
	fp, status, created := inv.Fingerprint, inv.Status, inv.CreatedAt
	if !validText(fp) {
		return 0, fmt.Errorf("create investigator %q: fingerprint %q is not valid UTF-8 text", inv.Name, fp)
	}
	ts, ns := splitTime(storable(created, time.Now()))
	var id int64
	err = s.audited(ctx, "create investigator", func(q querier) error {
		err := q.QueryRow(ctx, `INSERT INTO investigators (name, fingerprint, public_key, status, permissions,
		created_at, created_at_ns) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			pgText(inv.Name), fp, pgText(inv.PublicKey), status, pgText(string(pj)), ts, ns).Scan(&id)
		if pgCode(err) == codeUniqueViolation {
			return fmt.Errorf("investigator with fingerprint %s: %w", fp, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create investigator %q: %w", inv.Name, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// investigatorCols are the investigators table's columns, in the order
// scanInvestigator reads them.
const investigatorCols = `id, name, fingerprint, public_key, status, permissions, created_at, created_at_ns`

// scanInvestigator reads one row of investigatorCols.
func scanInvestigator(row pgx.Row) (action.Investigator, error) {
	var inv action.Investigator
	var perms string
	var created time.Time
	var ns int16
	if err := row.Scan(&inv.ID, &inv.Name, &inv.Fingerprint, &inv.PublicKey, &inv.Status, &perms, &created, &ns); err != nil {
		return inv, err
	}
	if err := json.Unmarshal([]byte(perms), &inv.Permissions); err != nil {
		return inv, fmt.Errorf("investigator %d: permissions: %w", inv.ID, err)
	}
	if len(inv.Permissions) == 0 {
		inv.Permissions = nil
	}
	inv.CreatedAt = joinTime(created, ns)
	return inv, nil
}

// Investigators lists investigators by ID.
func (s *Store) Investigators(ctx context.Context) ([]action.Investigator, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+investigatorCols+` FROM investigators ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list investigators: %w", err)
	}
	defer rows.Close()
	var out []action.Investigator
	for rows.Next() {
		inv, err := scanInvestigator(rows)
		if err != nil {
			return nil, fmt.Errorf("list investigators: %w", err)
		}
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list investigators: %w", err)
	}
	return out, nil
}

// InvestigatorByFingerprint finds an investigator by key fingerprint, in
// any case; ErrNotFound if none has it.
func (s *Store) InvestigatorByFingerprint(ctx context.Context, fingerprint string) (action.Investigator, error) {
	fp := strings.ToUpper(strings.TrimSpace(fingerprint))
	if !validText(fp) {
		return action.Investigator{}, fmt.Errorf("investigator with fingerprint %q: %w", fingerprint, store.ErrNotFound)
	}
	inv, err := scanInvestigator(s.pool.QueryRow(ctx,
		`SELECT `+investigatorCols+` FROM investigators WHERE fingerprint = $1`, fp))
	if errors.Is(err, pgx.ErrNoRows) {
		return inv, fmt.Errorf("investigator with fingerprint %q: %w", fingerprint, store.ErrNotFound)
	}
	if err != nil {
		return inv, fmt.Errorf("investigator with fingerprint %q: %w", fingerprint, err)
	}
	return inv, nil
}

// SetInvestigatorStatus activates or disables an investigator; ErrNotFound
// if there is no such ID.
func (s *Store) SetInvestigatorStatus(ctx context.Context, id int64, status string) error {
	if err := store.CheckInvestigatorStatus(status); err != nil {
		return fmt.Errorf("set status of investigator %d: %w", id, err)
	}
	return s.audited(ctx, "set investigator status", func(q querier) error {
		tag, err := q.Exec(ctx, `UPDATE investigators SET status = $1 WHERE id = $2`, status, id)
		if err != nil {
			return fmt.Errorf("set status of investigator %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("investigator %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}
