// Package store defines where the server keeps agents, investigators, actions,
// commands and results. Implementations live in sub-packages (sqlitestore:
// embedded, pure Go; pgstore: PostgreSQL) and all pass the conformance suite
// in storetest.
//
// The hot paths take batches: heartbeats, command fan-out and results are
// written many rows to a statement and many statements to a transaction, so a
// server never makes one database round trip per agent or per command.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/target"
)

// Errors returned by every store, tested with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrLeaseHeld: another owner holds an action's dispatch lease and it
	// has not expired.
	ErrLeaseHeld = errors.New("dispatch lease held by another owner")
	// ErrLeaseLost: the caller no longer holds the action's dispatch lease
	// (another owner took it over after it expired, or the dispatch was
	// finished).
	ErrLeaseLost = errors.New("dispatch lease lost")
	// ErrNotPending: the action is no longer pending, so nobody may
	// dispatch it.
	ErrNotPending = errors.New("action is not pending")
	// ErrReplayed: a token nonce was already used (UseTokenNonce).
	ErrReplayed = errors.New("token nonce already used")
	// ErrConflict: a change was made against a state that changed in
	// between (UpdateManifestBody).
	ErrConflict = errors.New("changed concurrently")
)

// Store is the server's persistence.
type Store interface {
	// UpsertAgents records heartbeats: each agent is created or updated,
	// its heartbeat time set and its status set to online.
	UpsertAgents(ctx context.Context, agents []action.Agent) error
	// MarkAgents sets the status of agents whose last heartbeat is older than
	// onlineSince to idle, and older than idleSince to offline.
	MarkAgents(ctx context.Context, onlineSince, idleSince time.Time) error
	// Agents returns the agents matching q, ordered by id.
	Agents(ctx context.Context, q AgentQuery) ([]action.Agent, error)
	// AgentRefs returns the IDs and names of the agents matching q,
	// ordered by id, without reading their other attributes: what fanning
	// an action out needs.
	AgentRefs(ctx context.Context, q AgentQuery) ([]AgentRef, error)
	// CountAgents returns how many agents match the target (nil: all).
	CountAgents(ctx context.Context, t target.Expr) (int, error)
	// AgentStatusCounts returns the number of agents in each status.
	AgentStatusCounts(ctx context.Context) (map[string]int, error)

	// SaveAgentCredential records an enrolled agent's identity; an existing
	// one for the same agent is replaced.
	SaveAgentCredential(ctx context.Context, c AgentCredential) error
	// AgentCredential returns an enrolled agent's identity.
	AgentCredential(ctx context.Context, agentID string) (AgentCredential, error)

	// CreateInvestigator adds an investigator; ErrExists if the fingerprint
	// is known. It returns the new ID.
	CreateInvestigator(ctx context.Context, inv action.Investigator) (int64, error)
	// Investigators lists investigators by ID.
	Investigators(ctx context.Context) ([]action.Investigator, error)
	// InvestigatorByFingerprint finds an investigator by key fingerprint
	// (upper-case hex).
	InvestigatorByFingerprint(ctx context.Context, fingerprint string) (action.Investigator, error)
	// SetInvestigatorStatus activates or disables an investigator.
	SetInvestigatorStatus(ctx context.Context, id int64, status string) error

	// CreateAPIKey stores an API key (its hash, never the secret);
	// ErrExists if the key ID is taken.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKey returns an API key with its hash; ErrNotFound if there is no
	// such key ID.
	APIKey(ctx context.Context, keyID string) (APIKey, error)
	// APIKeys lists the API keys of an investigator (every key when
	// investigatorID is 0), oldest first, without their hashes.
	APIKeys(ctx context.Context, investigatorID int64) ([]action.APIKey, error)
	// RevokeAPIKey marks a key revoked at at; revoking a revoked key keeps
	// the first time. ErrNotFound if there is no such key ID.
	RevokeAPIKey(ctx context.Context, keyID string, at time.Time) error
	// TouchAPIKey records that a key was used at at, unless it was
	// recorded used later. ErrNotFound if there is no such key ID.
	TouchAPIKey(ctx context.Context, keyID string, at time.Time) error

	// UseTokenNonce records the nonce of an investigator's token, to be
	// kept until n.Expires. It is atomic: of any number of calls with the
	// same key ID and nonce, at once or not, on this store or on others
	// over the same database, exactly one succeeds and the others get
	// ErrReplayed, until PurgeTokenNonces drops the nonce.
	UseTokenNonce(ctx context.Context, n TokenNonce) error
	// PurgeTokenNonces deletes the nonces whose expiry is at or before
	// now, and returns how many it deleted.
	PurgeTokenNonces(ctx context.Context, now time.Time) (int64, error)

	// CreateAction stores a signed action (with its signatures and
	// investigators) in status pending; ErrExists if the ID is taken.
	CreateAction(ctx context.Context, a *action.Action) error
	// Action returns an action with its counters computed from its commands.
	Action(ctx context.Context, id uint64) (*action.Action, error)
	// Actions lists actions, newest first.
	Actions(ctx context.Context, limit, offset int) ([]action.Action, error)
	// SetActionStatus records an action's status and, when finished is not
	// zero, its finish time.
	SetActionStatus(ctx context.Context, id uint64, status string, finished time.Time) error

	// AcquireDispatch takes the dispatch lease of a pending action for
	// l.Owner until l.Expires, when nobody holds it or its holder's lease
	// expired before now. ErrNotFound if there is no such action,
	// ErrNotPending if it is no longer pending, ErrLeaseHeld if another
	// owner's lease runs at now. Owners are unique per acquisition: an
	// owner that took a lease and lost it never gets it back.
	AcquireDispatch(ctx context.Context, l DispatchLease, now time.Time) error
	// RenewDispatch moves the expiry of a lease the caller holds to
	// l.Expires (an earlier time gives it up sooner); ErrLeaseLost if l.Owner
	// no longer holds it.
	RenewDispatch(ctx context.Context, l DispatchLease) error
	// DispatchCommands is CreateCommands for the holder of the dispatch
	// lease of the commands' action, which must be l.ActionID: in the same
	// transaction it checks that l.Owner still holds the lease (ErrLeaseLost
	// otherwise, and nothing is stored) and moves its expiry to l.Expires.
	// A dispatcher whose lease was taken over can therefore never store a
	// command after the new holder started.
	DispatchCommands(ctx context.Context, l DispatchLease, cmds []action.Command) error
	// FinishDispatch records the status of a dispatched action (and, when
	// finished is not zero, its finish time) and drops its lease, if
	// l.Owner still holds it; ErrLeaseLost otherwise.
	FinishDispatch(ctx context.Context, l DispatchLease, status string, finished time.Time) error
	// StalledDispatches returns, in increasing order, the IDs of the
	// pending actions whose dispatch lease expired before now, and of those
	// never leased that were created before unclaimedBefore: dispatches
	// that a server stopped in the middle of, or never started.
	StalledDispatches(ctx context.Context, now, unclaimedBefore time.Time) ([]uint64, error)

	// CreateCommands stores commands (status sent) in batches. The action
	// of each command is referenced by ID, not stored again.
	CreateCommands(ctx context.Context, cmds []action.Command) error
	// PendingCommands returns an agent's commands still in status sent
	// whose action is valid at now, with their actions, for redelivery.
	PendingCommands(ctx context.Context, agentID string, now time.Time) ([]action.Command, error)
	// StoreResults moves each result's command from sent to the result's
	// status, with its results, in one transaction. A result for a command
	// that is already terminal, or unknown, or whose agent does not match
	// the command's, changes nothing. It returns the command IDs that may
	// be acknowledged to agents, each once: those stored now, those already
	// terminal and owned by the result's agent (duplicates, late results
	// after expiry), and unknown IDs, so that an agent stops resending a
	// result nothing can accept. A result whose agent is not the command's
	// is not acknowledged. Results with a non-terminal status are ignored.
	StoreResults(ctx context.Context, results []action.ResultMessage) (ack []uint64, err error)
	// ExpireCommands moves commands still in status sent whose action
	// expired before now to expired, and returns the IDs of the actions
	// touched.
	ExpireCommands(ctx context.Context, now time.Time) ([]uint64, error)
	// Commands returns commands matching q with their results, ordered by
	// command ID.
	Commands(ctx context.Context, q CommandQuery) ([]action.Command, error)
	// Command returns one command with its results.
	Command(ctx context.Context, id uint64) (*action.Command, error)

	// AppendAudit appends records to the audit log, in one transaction
	// that serializes with every other append (of this store and of every
	// other store over the same database), and returns the entries made.
	// Changes that have a store method append their record in the same
	// transaction instead (WithAudit).
	AppendAudit(ctx context.Context, recs ...audit.Record) ([]audit.Entry, error)
	// AuditLog returns up to limit entries (AuditPageSize) with seq >
	// after, in increasing seq.
	AuditLog(ctx context.Context, after uint64, limit int) ([]audit.Entry, error)

	// CreateManifest stores a mig-loader manifest (m.ID is ignored) and
	// returns its ID; ErrExists if its name, OS, architecture and serial
	// are taken. The audit records of ctx are appended with it.
	CreateManifest(ctx context.Context, m ManifestRecord) (int64, error)
	// Manifest returns a manifest with its body; ErrNotFound if unknown.
	Manifest(ctx context.Context, id int64) (ManifestRecord, error)
	// ListManifests returns every manifest with its body, newest ID first.
	ListManifests(ctx context.Context) ([]ManifestRecord, error)
	// UpdateManifestBody replaces a manifest's body (a signature was
	// appended) when its current body is old: ErrNotFound if there is no
	// such manifest, ErrConflict if its body is no longer old. The audit
	// records of ctx are appended with it.
	UpdateManifestBody(ctx context.Context, id int64, old, body []byte) error
	// SetManifestStatus activates or disables a manifest; ErrNotFound if
	// unknown. The audit records of ctx are appended with it.
	SetManifestStatus(ctx context.Context, id int64, status string) error
	// CurrentManifest returns the active manifest of name, os and arch with
	// the highest serial; ErrNotFound if there is none.
	CurrentManifest(ctx context.Context, name, os, arch string) (ManifestRecord, error)
	// PutManifestFile stores a file under its SHA-256 (lower-case hex),
	// which it checks against data (CheckManifestFile). Storing a file
	// already stored changes nothing. The audit records of ctx are
	// appended with it.
	PutManifestFile(ctx context.Context, sha256 string, data []byte) (ManifestFileInfo, error)
	// ManifestFileInfo returns a stored file's size; ErrNotFound if unknown.
	ManifestFileInfo(ctx context.Context, sha256 string) (ManifestFileInfo, error)
	// ManifestFile returns a stored file; ErrNotFound if unknown.
	ManifestFile(ctx context.Context, sha256 string) ([]byte, error)

	// Close closes the store.
	Close() error
}

// AgentCredential is an enrolled agent's identity: its public key and the
// hash of its relay password.
type AgentCredential struct {
	AgentID      string
	PublicKey    []byte // ed25519
	PasswordHash []byte // see package relay's implementations
	EnrolledAt   time.Time
}

// APIKey is an API key as stored: its description and the SHA-256 of its
// secret.
type APIKey struct {
	action.APIKey
	// SecretHash is the SHA-256 of the key's secret part.
	SecretHash []byte
}

// AgentQuery selects agents.
type AgentQuery struct {
	Target target.Expr // nil selects all
	Limit  int         // 0: no limit
	After  string      // only agents with id > After (paging)
	// WithoutCommandOf, when not zero, leaves out the agents that have a
	// command of this action (resuming a dispatch).
	WithoutCommandOf uint64
}

// AgentRef is an agent's ID and name.
type AgentRef struct {
	ID   string
	Name string
}

// DispatchLease says who fans an action out, until when. Owner names one
// acquisition (a server's identity and a random part), never reused.
type DispatchLease struct {
	ActionID uint64
	Owner    string
	Expires  time.Time
}

// CommandQuery selects commands. Zero fields do not filter.
type CommandQuery struct {
	ActionID   uint64
	AgentID    string
	Status     string
	FoundOnly  bool   // only commands whose results found something
	AfterID    uint64 // only commands with id > AfterID (paging)
	Limit      int    // 0: no limit
	NoResults  bool   // leave Results (and Signature) out
	WithAction bool   // fill in Command.Action (otherwise only Action.ID)
}
