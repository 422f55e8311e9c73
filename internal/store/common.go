package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// AddCount adds n commands in status to c, keeping Sent = Done + InFlight.
func AddCount(c *action.Counters, status string, n int) {
	c.Sent += n
	switch status {
	case action.CmdSent:
		c.InFlight += n
		return
	case action.CmdSuccess:
		c.Success += n
	case action.CmdFailed:
		c.Failed += n
	case action.CmdTimeout:
		c.TimeOut += n
	case action.CmdExpired:
		c.Expired += n
	case action.CmdCancelled:
		c.Cancelled += n
	default:
		// Stores write no other status; count it as in flight so that
		// Sent = Done + InFlight still holds.
		c.InFlight += n
		return
	}
	c.Done += n
}

// DBID converts an action or command ID to the signed 64-bit integer
// databases store, refusing 0 and IDs of 2^63 and above.
func DBID(kind string, id uint64) (int64, error) {
	if id == 0 || id > math.MaxInt64 {
		return 0, fmt.Errorf("%s id %d: must be between 1 and 2^63-1", kind, id)
	}
	return int64(id), nil
}

// CheckInvestigatorStatus refuses a status other than active or disabled.
func CheckInvestigatorStatus(status string) error {
	if status != action.InvestigatorActive && status != action.InvestigatorDisabled {
		return fmt.Errorf("investigator status %q: want %q or %q", status,
			action.InvestigatorActive, action.InvestigatorDisabled)
	}
	return nil
}

// PrepareInvestigator normalises a new investigator the same way in every
// store: the fingerprint trimmed and upper-case, the status active when
// empty, the creation time now when zero. It returns the permissions as the
// JSON array stores keep.
func PrepareInvestigator(inv action.Investigator, now time.Time) (action.Investigator, []byte, error) {
	inv.Fingerprint = strings.ToUpper(strings.TrimSpace(inv.Fingerprint))
	if inv.Fingerprint == "" {
		return inv, nil, fmt.Errorf("create investigator %q: empty fingerprint", inv.Name)
	}
	if inv.Status == "" {
		inv.Status = action.InvestigatorActive
	}
	if err := CheckInvestigatorStatus(inv.Status); err != nil {
		return inv, nil, fmt.Errorf("create investigator %q: %w", inv.Name, err)
	}
	perms := inv.Permissions
	if perms == nil {
		perms = []string{}
	}
	pj, err := json.Marshal(perms)
	if err != nil {
		return inv, nil, fmt.Errorf("create investigator %q: permissions: %w", inv.Name, err)
	}
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = now
	}
	return inv, pj, nil
}
