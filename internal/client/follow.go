package client

import (
	"context"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// FollowPageSize is the page size Follow asks for.
const FollowPageSize = 500

// followFetchOne is how many newly finished commands Follow fetches one by
// one; more than that are fetched by paging.
const followFetchOne = 32

// DefaultFollowInterval is Follow's longest polling interval when every is
// not positive; the first polls come sooner.
const DefaultFollowInterval = time.Second

// Follow watches an action until every one of its commands is in a terminal
// status (Done == Sent), or ctx ends. Every poll, it calls onCommand (if not
// nil) once for every command that finished since the last poll, in ID order
// within a poll, then onProgress (if not nil) with the action's counters as
// read at the start of the poll, so that a printer can write a poll's
// results at once. Each command is delivered exactly once, however the
// agents' answers interleave with the pages. It returns the action as last
// fetched.
//
// Follow pages through commands with the after cursor, FollowPageSize at a
// time, and keeps only the IDs of delivered commands above the lowest
// unfinished one, so its memory does not grow with the results.
func (c *Client) Follow(ctx context.Context, actionID uint64, every time.Duration,
	onProgress func(action.Counters), onCommand func(action.Command)) (*action.Action, error) {
	if every <= 0 {
		every = DefaultFollowInterval
	}
	f := &follower{c: c, id: actionID, deliver: onCommand, delivered: map[uint64]bool{}}
	// Most investigations answer in well under a second: poll quickly at
	// first, then back off to every.
	wait := min(50*time.Millisecond, every)
	var last *action.Action
	for {
		a, err := c.Action(ctx, actionID)
		if err != nil {
			return last, err
		}
		last = a
		if err := f.poll(ctx); err != nil {
			return a, err
		}
		if onProgress != nil {
			onProgress(a.Counters)
		}
		if isDone(a) {
			return a, nil
		}
		t := time.NewTimer(wait)
		wait = min(2*wait, every)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, ctx.Err()
		case <-t.C:
		}
	}
}

// isDone reports whether every command of a dispatched action is terminal.
func isDone(a *action.Action) bool {
	n := a.Counters
	if n.Done < n.Sent {
		return false
	}
	if n.Sent > 0 {
		return true
	}
	// No command: done only once the server says the action is over.
	return a.Status == action.StatusCompleted || a.Status == action.StatusExpired
}

// follower remembers which commands Follow has delivered. Every command with
// an ID up to water is delivered; delivered holds the delivered IDs above it.
type follower struct {
	c         *Client
	id        uint64
	deliver   func(action.Command)
	water     uint64
	delivered map[uint64]bool
}

func (f *follower) send(cmd action.Command) {
	if f.delivered[cmd.ID] || cmd.ID <= f.water {
		return
	}
	f.delivered[cmd.ID] = true
	if f.deliver != nil {
		f.deliver(cmd)
	}
}

// poll delivers every command that is terminal now and was not delivered,
// then moves the watermark up to the first unfinished command.
func (f *follower) poll(ctx context.Context) error {
	// With nothing delivered above the watermark, one pass with results is
	// enough: every terminal command it sees is new.
	withResults := len(f.delivered) == 0
	var fresh []uint64
	newWater, pending := f.water, false
	after := f.water
	for {
		page, err := f.c.Commands(ctx, f.id, CommandsQuery{After: after, Limit: FollowPageSize, NoResults: !withResults})
		if err != nil {
			return err
		}
		for _, cmd := range page.Commands {
			if cmd.ID <= f.water {
				continue
			}
			if !action.IsTerminal(cmd.Status) {
				pending = true
				continue
			}
			if !f.delivered[cmd.ID] {
				if withResults {
					f.send(cmd)
				} else {
					fresh = append(fresh, cmd.ID)
				}
			}
			if !pending {
				newWater = cmd.ID
			}
		}
		if page.Next == 0 || len(page.Commands) == 0 {
			break
		}
		after = page.Next
	}
	if err := f.fetch(ctx, fresh); err != nil {
		return err
	}
	for _, id := range fresh {
		if !f.delivered[id] && id-1 < newWater {
			newWater = id - 1
		}
	}
	if newWater > f.water {
		f.water = newWater
		for id := range f.delivered {
			if id <= f.water {
				delete(f.delivered, id)
			}
		}
	}
	return nil
}

// fetch delivers the commands whose IDs are in fresh (sorted), which were
// seen terminal without their results.
func (f *follower) fetch(ctx context.Context, fresh []uint64) error {
	if len(fresh) == 0 {
		return nil
	}
	if len(fresh) <= followFetchOne {
		for _, id := range fresh {
			cmd, err := f.c.Command(ctx, id)
			if err != nil {
				return err
			}
			if cmd.ID != id {
				return fmt.Errorf("%w: asked for command %d, got %d", ErrBadResponse, id, cmd.ID)
			}
			if action.IsTerminal(cmd.Status) {
				f.send(*cmd)
			}
		}
		return nil
	}
	last := fresh[len(fresh)-1]
	after := fresh[0] - 1
	for {
		page, err := f.c.Commands(ctx, f.id, CommandsQuery{After: after, Limit: FollowPageSize})
		if err != nil {
			return err
		}
		for _, cmd := range page.Commands {
			if cmd.ID > f.water && action.IsTerminal(cmd.Status) {
				f.send(cmd)
			}
			if cmd.ID >= last {
				return nil
			}
		}
		if page.Next == 0 || len(page.Commands) == 0 {
			return nil
		}
		after = page.Next
	}
}
