package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// agentCols are the agents table's columns, in the order agentRow scans them.
const agentCols = `id, name, queueloc, mode, version, pid, status, heartbeattime, starttime, environment, tags`

// UpsertAgents creates or updates every agent in one transaction, with its
// heartbeat time (now when zero or outside the years 0000-9999) and status
// online. A start time outside those years is stored as zero.
func (s *Store) UpsertAgents(ctx context.Context, agents []action.Agent) error {
	if len(agents) == 0 {
		return nil
	}
	const cols = 11
	now := time.Now()
	args := make([]any, 0, cols*min(len(agents), rowsPerChunk(cols)))
	for _, a := range agents {
		if a.ID == "" {
			return fmt.Errorf("upsert agent %q: empty id", a.Name)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upsert agents: begin: %w", err)
	}
	defer tx.Rollback()
	for start := 0; start < len(agents); start += rowsPerChunk(cols) {
		chunk := agents[start:min(len(agents), start+rowsPerChunk(cols))]
		args = args[:0]
		for _, a := range chunk {
			env, err := json.Marshal(a.Environment)
			if err != nil {
				return fmt.Errorf("upsert agent %s: environment: %w", a.ID, err)
			}
			tags := a.Tags
			if tags == nil {
				tags = map[string]string{}
			}
			tj, err := json.Marshal(tags)
			if err != nil {
				return fmt.Errorf("upsert agent %s: tags: %w", a.ID, err)
			}
			hb := storable(a.HeartbeatTime, now)
			if hb.IsZero() {
				hb = now
			}
			args = append(args, a.ID, a.Name, a.QueueLoc, a.Mode, a.Version, a.PID, action.AgentOnline,
				formatTime(hb), formatTime(storable(a.StartTime, time.Time{})), string(env), string(tj))
		}
		q := `INSERT INTO agents (` + agentCols + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat("("+placeholders(cols)+"), ", len(chunk)), ", ") +
			` ON CONFLICT (id) DO UPDATE SET name = excluded.name, queueloc = excluded.queueloc,
			mode = excluded.mode, version = excluded.version, pid = excluded.pid, status = excluded.status,
			heartbeattime = excluded.heartbeattime, starttime = excluded.starttime,
			environment = excluded.environment, tags = excluded.tags`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("upsert %d agents starting with %s: %w", len(chunk), chunk[0].ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upsert agents: commit: %w", err)
	}
	return nil
}

// MarkAgents sets agents whose last heartbeat is before onlineSince to idle,
// and before idleSince to offline.
func (s *Store) MarkAgents(ctx context.Context, onlineSince, idleSince time.Time) error {
	if idleSince.After(onlineSince) {
		return fmt.Errorf("mark agents: idle window start %s is after online window start %s",
			formatTime(idleSince), formatTime(onlineSince))
	}
	on, idle := formatTime(onlineSince), formatTime(idleSince)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark agents: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET status = ?
		WHERE heartbeattime < ? AND heartbeattime >= ? AND status <> ?`,
		action.AgentIdle, on, idle, action.AgentIdle); err != nil {
		return fmt.Errorf("mark agents idle: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET status = ? WHERE heartbeattime < ? AND status <> ?`,
		action.AgentOffline, idle, action.AgentOffline); err != nil {
		return fmt.Errorf("mark agents offline: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mark agents: commit: %w", err)
	}
	return nil
}

// targetCond compiles a target to a condition over the agents table; a nil
// target is every agent.
func targetCond(t target.Expr) (string, []any, error) {
	if t == nil {
		return "1", nil, nil
	}
	cond, args, err := target.Compile(t, target.SQLite, 1)
	if err != nil {
		return "", nil, fmt.Errorf("compile target %q: %w", t.String(), err)
	}
	return "(" + cond + ")", args, nil
}

// agentWhere returns the WHERE clause (conditions, ORDER BY and LIMIT) of a
// query of the agents table that q selects, and its arguments.
func agentWhere(q store.AgentQuery) (string, []any, error) {
	cond, args, err := targetCond(q.Target)
	if err != nil {
		return "", nil, err
	}
	where := ` WHERE ` + cond
	if q.WithoutCommandOf != 0 {
		aid, err := store.DBID("action", q.WithoutCommandOf)
		if err != nil {
			return "", nil, fmt.Errorf("query agents: %w", err)
		}
		// Not correlated: SQLite builds the set of the action's agents
		// once, from the commands_action index.
		where += ` AND id NOT IN (SELECT agent_id FROM commands WHERE action_id = ?)`
		args = append(args, aid)
	}
	if q.After != "" {
		where += ` AND id > ?`
		args = append(args, q.After)
	}
	where += ` ORDER BY id`
	if q.Limit > 0 {
		where += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return where, args, nil
}

// Agents returns the agents matching q, ordered by id.
func (s *Store) Agents(ctx context.Context, q store.AgentQuery) ([]action.Agent, error) {
	where, args, err := agentWhere(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+agentCols+` FROM agents`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query agents: %w", err)
	}
	defer rows.Close()
	var out []action.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query agents: %w", err)
	}
	return out, nil
}

// AgentRefs returns the IDs and names of the agents matching q, ordered by
// id; only those two columns are read.
func (s *Store) AgentRefs(ctx context.Context, q store.AgentQuery) ([]store.AgentRef, error) {
	where, args, err := agentWhere(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, name FROM agents`+where, args...)
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
func scanAgent(rows *sql.Rows) (action.Agent, error) {
	var a action.Agent
	var hb, st sql.NullString
	var env, tags string
	if err := rows.Scan(&a.ID, &a.Name, &a.QueueLoc, &a.Mode, &a.Version, &a.PID, &a.Status,
		&hb, &st, &env, &tags); err != nil {
		return a, fmt.Errorf("read agent: %w", err)
	}
	var err error
	if a.HeartbeatTime, err = parseTime(hb); err != nil {
		return a, fmt.Errorf("agent %s: heartbeat: %w", a.ID, err)
	}
	if a.StartTime, err = parseTime(st); err != nil {
		return a, fmt.Errorf("agent %s: start time: %w", a.ID, err)
	}
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
	cond, args, err := targetCond(t)
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE `+cond, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count agents: %w", err)
	}
	return n, nil
}

// AgentStatusCounts returns the number of agents in each status; online,
// idle and offline are always present.
func (s *Store) AgentStatusCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM agents GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count agents by status: %w", err)
	}
	defer rows.Close()
	out := map[string]int{action.AgentOnline: 0, action.AgentIdle: 0, action.AgentOffline: 0}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("count agents by status: %w", err)
		}
		out[status] = n
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
	enrolled := c.EnrolledAt
	if enrolled.IsZero() {
		enrolled = time.Now()
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO agent_credentials (agent_id, public_key, password_hash, enrolled_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (agent_id) DO UPDATE SET public_key = excluded.public_key,
			password_hash = excluded.password_hash, enrolled_at = excluded.enrolled_at`,
		c.AgentID, nonNil(c.PublicKey), nonNil(c.PasswordHash), formatTime(enrolled)); err != nil {
		return fmt.Errorf("save credential of agent %s: %w", c.AgentID, err)
	}
	return nil
}

// nonNil returns b, or an empty slice for nil so that a NOT NULL BLOB
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
	var enrolled sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT public_key, password_hash, enrolled_at FROM agent_credentials WHERE agent_id = ?`,
		agentID).Scan(&c.PublicKey, &c.PasswordHash, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, err)
	}
	if c.EnrolledAt, err = parseTime(enrolled); err != nil {
		return c, fmt.Errorf("credential of agent %q: %w", agentID, err)
	}
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
	var id int64
	err = s.audited(ctx, func(q querier) error {
		err := q.QueryRowContext(ctx, `INSERT INTO investigators (name, fingerprint, public_key, status, permissions, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			inv.Name, fp, inv.PublicKey, status, string(pj), formatTime(created)).Scan(&id)
		if isUniqueViolation(err) {
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
const investigatorCols = `id, name, fingerprint, public_key, status, permissions, created_at`

// scanInvestigator reads one row of investigatorCols.
func scanInvestigator(scan func(...any) error) (action.Investigator, error) {
	var inv action.Investigator
	var perms string
	var created sql.NullString
	if err := scan(&inv.ID, &inv.Name, &inv.Fingerprint, &inv.PublicKey, &inv.Status, &perms, &created); err != nil {
		return inv, err
	}
	if err := json.Unmarshal([]byte(perms), &inv.Permissions); err != nil {
		return inv, fmt.Errorf("investigator %d: permissions: %w", inv.ID, err)
	}
	if len(inv.Permissions) == 0 {
		inv.Permissions = nil
	}
	var err error
	if inv.CreatedAt, err = parseTime(created); err != nil {
		return inv, fmt.Errorf("investigator %d: %w", inv.ID, err)
	}
	return inv, nil
}

// Investigators lists investigators by ID.
func (s *Store) Investigators(ctx context.Context) ([]action.Investigator, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+investigatorCols+` FROM investigators ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list investigators: %w", err)
	}
	defer rows.Close()
	var out []action.Investigator
	for rows.Next() {
		inv, err := scanInvestigator(rows.Scan)
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
	inv, err := scanInvestigator(s.r.QueryRowContext(ctx,
		`SELECT `+investigatorCols+` FROM investigators WHERE fingerprint = ?`, fp).Scan)
	if errors.Is(err, sql.ErrNoRows) {
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
	return s.audited(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, `UPDATE investigators SET status = ? WHERE id = ?`, status, id)
		if err != nil {
			return fmt.Errorf("set status of investigator %d: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("set status of investigator %d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("investigator %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}
