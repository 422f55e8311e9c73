package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// Replay protection that survives the loss of the journal.
//
// The journal remembers every action that ran until it expires, so an
// action is refused when it comes again. If the journal is lost (deleted, or
// corrupt and moved aside) while the rest of the state directory remains,
// the agent cannot tell which actions ran: the new journal records its
// epoch, the time it began, and every action valid from before the epoch is
// refused as a possible replay. An action that ran before the loss was valid
// from before it (the agent runs nothing before its validfrom), so none can
// run twice; an action signed after the loss runs as usual.
//
// What the journal cannot speak for at all — a state directory wiped whole
// (then the agent cannot tell it from its first start) or rolled back to an
// older copy — is bounded by the longest validity window the
// agent accepts, Config.MaxValidity.

// checkWindow refuses an action whose validity window is longer than the
// agent accepts, or that is valid from before the journal's epoch.
func (a *Agent) checkWindow(act *action.Action) *refusal {
	if w := act.ExpireAfter.Sub(act.ValidFrom); w > a.cfg.MaxValidity {
		return &refusal{action.CodeValidityTooLong, fmt.Errorf(
			"action %d is valid for %s (from %s to %s), longer than this agent's maxvalidity of %s",
			act.ID, w, act.ValidFrom.UTC().Format(time.RFC3339), act.ExpireAfter.UTC().Format(time.RFC3339), a.cfg.MaxValidity)}
	}
	if ep := a.journal.epoch; !ep.IsZero() && act.ValidFrom.Before(ep) {
		return &refusal{action.CodeReplay, fmt.Errorf(
			"action %d is valid from %s, before this agent's journal began at %s: possible replay "+
				"(the previous journal was lost; launch the action again to run it)",
			act.ID, act.ValidFrom.UTC().Format(time.RFC3339Nano), ep.UTC().Format(time.RFC3339Nano))}
	}
	return nil
}

// stateDirFresh reports whether the agent never started with dir as its
// state directory: none of the files and directories every start leaves
// (journal.json, relay.json, inbox/, outbox/, corrupt/) is there. An
// operator may provision agent.key beforehand. Removing all of them is
// wiping the state directory, which the journal cannot speak for (see
// above).
func stateDirFresh(dir string) (bool, error) {
	for _, n := range []string{"journal.json", "relay.json", "inbox", "outbox", "corrupt"} {
		_, err := os.Lstat(filepath.Join(dir, n))
		switch {
		case err == nil:
			return false, nil
		case !errors.Is(err, os.ErrNotExist):
			return false, fmt.Errorf("statedir %s: %w", dir, err)
		}
	}
	return true, nil
}
