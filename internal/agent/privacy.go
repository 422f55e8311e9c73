package agent

import (
	"strings"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/sign"
)

// limitResults applies the privacy rule (module.LimitContent) to every
// result of a command before it leaves the endpoint: the module's content
// fields are bounded unless the action's signers also satisfy the ACL entry
// "raw_<module>". It runs in the agent on what a module child returned, so
// a module cannot skip it.
func (a *Agent) limitResults(cmd *action.Command, res *action.ResultMessage) {
	act := &cmd.Action
	var fps []string
	verified := false
	for i := range res.Results {
		if i >= len(act.Operations) {
			// More results than operations: not something a module can
			// do, but bound them as if from an unknown module.
			module.LimitContent(&res.Results[i], "", false)
			continue
		}
		mod := act.Operations[i].Module
		raw := false
		if _, ok := a.acl[acl.RawPrefix+mod]; ok && !strings.HasPrefix(mod, acl.RawPrefix) {
			if !verified {
				fps = a.signers(act)
				verified = true
			}
			raw = fps != nil && a.acl.AuthorizeRaw(mod, fps) == nil
		}
		if n := module.LimitContent(&res.Results[i], mod, raw); n > 0 {
			a.log.Info("privacy: withheld values from a result", "command", cmd.ID, "operation", i, "module", mod, "withheld", n)
		} else if raw {
			a.log.Warn("privacy: sending an unlimited result, the raw ACL entry is satisfied", "command", cmd.ID, "operation", i, "module", mod)
		}
	}
}

// signers verifies the action's signatures again (it was checked before it
// ran; this is only done when a raw entry could apply) and returns the
// fingerprints, or nil.
func (a *Agent) signers(act *action.Action) []string {
	checked, err := act.Check()
	if err != nil {
		return nil
	}
	fps, err := sign.VerifyChecked(checked, a.keyring)
	if err != nil {
		return nil
	}
	return fps
}
