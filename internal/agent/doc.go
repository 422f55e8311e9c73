// Package agent is MIG's endpoint runtime: the process that runs on every
// endpoint, connects out to the relay, and runs the investigations that
// investigators signed for it.
//
// # Trust
//
// The agent trusts nobody but the investigators' keys in its own keyring and
// the weights its own ACL gives them. For every command it receives it checks,
// in this order, refusing with a result that carries a stable action.Code*
// value at the first failure:
//
//  1. the command decodes and is addressed to this agent (CodeBadEncoding);
//  2. the action validates (CodeBadEncoding);
//  3. every signature verifies against the keyring (CodeBadSignature,
//     CodeUntrusted);
//  4. the signers' ACL weights reach the minimum of every module of the
//     action (CodeACLDenied);
//  5. now is inside [validfrom, expireafter] (CodeNotYetValid, CodeExpired),
//     and the window is no longer than Config.MaxValidity, a day by default
//     (CodeValidityTooLong);
//  6. the action has not run here before (CodeReplay): it is not in the
//     replay journal, and it is not valid from before the journal's epoch
//     (see below);
//  7. the signed target matches the agent's own attributes (CodeNotTargeted);
//  8. every operation names a known module with valid parameters
//     (CodeUnknownModule, CodeBadParameters).
//
// Only then is the action ID written to the replay journal (and synced to
// disk) and are the operations run, each in a child process ("mig-agent -m
// <module>") with a timeout of min(ModuleTimeout, time left until
// expireafter), so that a module that crashes or hangs never takes the agent
// down. A server, store or relay that is compromised can therefore not make
// an agent run anything an investigator did not sign for it.
//
// # State directory
//
// Everything the agent keeps lives in Config.StateDir, written atomically
// (internal/atomicfile: temporary file, fsync, rename, fsync of the
// directory) with mode 0600 in directories of mode 0700. At start the agent
// refuses to run if agent.key or relay.json is open to group or others or
// owned by another user, or if another user owns the state directory, and
// closes a state directory open to others (with a warning); a journal that
// others could write is treated as lost (see perm.go):
//
//	agent.key      the agent's Ed25519 identity (PKCS#8 PEM), made on first start
//	relay.json     the relay credentials received at enrollment
//	journal.json   the IDs of the actions that ran, until they expire (replay protection),
//	               and the journal's epoch
//	inbox/         every command received, until it is answered
//	outbox/        every result, until the server acknowledges it
//	corrupt/       state files that did not parse, moved aside for an operator
//
// The journal's epoch is when it began after an earlier journal was lost.
// A journal missing at start (while the agent has started here before:
// relay.json, inbox/, outbox/ or corrupt/ is there), or one that does not
// parse (moved to corrupt/), cannot say which actions ran, so the agent
// starts a new one whose epoch is now, writes it at once, and refuses every
// action valid from before the epoch as a possible replay ("action N is
// valid from X, before this agent's journal began at Y: possible replay").
// Any action that ran before the loss was valid from before it, so none runs
// twice; an action launched after the loss runs. A state directory wiped
// whole, or rolled back to an older copy, is beyond what the journal can
// tell: MaxValidity bounds how long such an action stays replayable.
//
// A command left in the inbox by a crash is resumed on the next start: if it
// had started running it is answered failed (CodeModuleFailed, "agent
// restarted while running the command"), otherwise it is checked and run as
// if it had just arrived. Results stay in the outbox until an
// action.AckMessage names their command, and are sent again after every
// reconnect and periodically (every 10s, backing off) while unacknowledged.
//
// # Configuration
//
// A Config is built from defaults, then a JSON file (LoadConfig; unknown keys
// are errors), then MIG_AGENT_* environment variables, then command-line
// flags (SetFlags), and is validated once (Validate, also called by New).
//
// An agent can also carry its configuration compiled in, for deployments that
// ship one static binary. Three package variables are meant to be set with the
// linker's -X flag; each holds standard base64 so that multi-line content
// survives the command line:
//
//	builtinConfig   the JSON configuration file, used when no file is given
//	builtinKeyring  the armored investigators' public keys, used when the
//	                configuration names neither keyring nor keyringdata
//	builtinACL      the ACL JSON, used when it names neither acl nor acldata
//
// For example:
//
//	go build -ldflags "\
//	  -X github.com/migplatform/mig/internal/agent.builtinConfig=$(base64 -w0 agent.json) \
//	  -X github.com/migplatform/mig/internal/agent.builtinKeyring=$(base64 -w0 investigators.asc) \
//	  -X github.com/migplatform/mig/internal/agent.builtinACL=$(base64 -w0 acl.json) \
//	  -X github.com/migplatform/mig/internal/version.Version=1.2.3" ./cmd/mig-agent
package agent
