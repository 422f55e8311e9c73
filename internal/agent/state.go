package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/atomicfile"
)

// Limits on the state the agent keeps on disk.
const (
	// maxJournalEntries bounds the replay journal. When it is full of
	// unexpired actions, new actions are refused (CodeReplay): the agent
	// could not prove later that it had not run them.
	maxJournalEntries = 1 << 16
	// maxJournalSize bounds the journal file.
	maxJournalSize = 16 << 20
	// maxInbox bounds the commands waiting to be answered; more are dropped
	// and the server sends them again on the next hello.
	maxInbox = 256
	// maxOutbox bounds the unacknowledged results; while it is full, new
	// commands are dropped (the server sends them again).
	maxOutbox = 1024
	// journalGrace keeps journal entries this long after their action
	// expired, so that a clock stepping back cannot reopen a replay.
	journalGrace = time.Hour
)

// Errors of the agent's state.
var (
	// ErrCorrupt is wrapped by errors for state files that do not parse.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrJournalFull is returned when the replay journal cannot take
	// another unexpired action.
	ErrJournalFull = errors.New("replay journal is full")
)

// moveAside moves a state file that does not parse into StateDir/corrupt, so
// that an operator can look at it and the agent can go on.
func moveAside(stateDir, path string, cause error, log *slog.Logger) {
	dst := filepath.Join(stateDir, "corrupt",
		filepath.Base(path)+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	log.Error("moving a corrupt state file aside", "file", path, "to", dst, "err", cause)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		log.Error("cannot make the corrupt directory", "err", err)
	}
	if err := os.Rename(path, dst); err != nil {
		log.Error("cannot move a corrupt state file aside; removing it", "file", path, "err", err)
		os.Remove(path)
	}
}

// journalEntry records that an action ran, as a given command.
type journalEntry struct {
	Action      uint64    `json:"action"`
	Command     uint64    `json:"command"`
	ExpireAfter time.Time `json:"expireafter"`
}

// journalFile is the on-disk shape of the journal. Epoch, when set, is when
// the journal began again after the previous one was lost (see openJournal);
// a journal without it (a new agent's, or one written before epochs) has
// lost nothing. An agent that does not know the field ignores it.
type journalFile struct {
	V       int            `json:"v"`
	Epoch   time.Time      `json:"epoch,omitzero"`
	Entries []journalEntry `json:"entries"`
}

// journal is the replay journal: the actions that ran here and have not
// expired. Every change is on disk before it returns.
type journal struct {
	path string
	// memory keeps the journal in memory only (Options.MemoryState): it
	// protects against replays only while the process lives.
	memory bool
	// epoch, when not zero, is when this journal began after an earlier
	// one was lost: an action valid from before it may have run here
	// without the journal knowing, so it is refused (checkWindow).
	epoch   time.Time
	mu      sync.Mutex
	entries map[uint64]journalEntry // by action ID
}

// newMemoryJournal returns an empty journal that is never written to disk.
func newMemoryJournal() *journal {
	return &journal{memory: true, entries: map[uint64]journalEntry{}}
}

// parseJournal decodes a journal file, refusing anything out of shape, and
// returns its entries and its epoch.
func parseJournal(data []byte) (map[uint64]journalEntry, time.Time, error) {
	if len(data) > maxJournalSize {
		return nil, time.Time{}, fmt.Errorf("%w: journal is %d bytes, over %d", ErrCorrupt, len(data), maxJournalSize)
	}
	var f journalFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: journal: %v", ErrCorrupt, err)
	}
	if f.V != 1 {
		return nil, time.Time{}, fmt.Errorf("%w: journal version %d, want 1", ErrCorrupt, f.V)
	}
	if len(f.Entries) > maxJournalEntries {
		return nil, time.Time{}, fmt.Errorf("%w: journal has %d entries, over %d", ErrCorrupt, len(f.Entries), maxJournalEntries)
	}
	m := make(map[uint64]journalEntry, len(f.Entries))
	for _, e := range f.Entries {
		if e.Command == 0 || e.ExpireAfter.IsZero() {
			return nil, time.Time{}, fmt.Errorf("%w: journal entry for action %d has no command or expiry", ErrCorrupt, e.Action)
		}
		m[e.Action] = e
	}
	return m, f.Epoch, nil
}

// openJournal loads the journal of stateDir and keeps it on disk from then
// on. fresh says the state directory was empty or missing at start: a new
// agent, whose empty journal has lost nothing. Otherwise a missing journal,
// or a corrupt one (moved aside), was lost: the new journal begins at now
// (its epoch), and actions valid from before it are refused, since they may
// have run here already. The epoch is written into the new journal at once,
// so that it survives a restart; losing that journal too only moves the
// epoch later.
func openJournal(stateDir string, fresh bool, now time.Time, log *slog.Logger) (*journal, error) {
	j := &journal{path: filepath.Join(stateDir, "journal.json"), entries: map[uint64]journalEntry{}}
	data, err := readFileLimited(j.path, maxJournalSize)
	if err == nil {
		err = journalTampered(j.path)
	}
	if err == nil {
		var m map[uint64]journalEntry
		if m, j.epoch, err = parseJournal(data); err == nil {
			j.entries = m
			return j, nil
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist) && fresh:
	case errors.Is(err, os.ErrNotExist):
		j.epoch = now.UTC()
		log.Warn("the replay journal is missing: refusing actions valid from before now, which may have run here",
			"file", j.path, "epoch", j.epoch.Format(time.RFC3339Nano))
	default:
		moveAside(stateDir, j.path, err, log)
		j.epoch = now.UTC()
		log.Warn("the replay journal was corrupt: refusing actions valid from before now, which may have run here",
			"file", j.path, "epoch", j.epoch.Format(time.RFC3339Nano))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.saveLocked(); err != nil {
		return nil, fmt.Errorf("start the replay journal: %w", err)
	}
	return j, nil
}

// lookup returns the entry of an action, if it ran here.
func (j *journal) lookup(actionID uint64) (journalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.entries[actionID]
	return e, ok
}

// claim records that an action runs as a command and syncs the journal. If
// the action is already there, it returns the entry and false and changes
// nothing.
func (j *journal) claim(e journalEntry, now time.Time) (journalEntry, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.entries[e.Action]; ok {
		return old, false, nil
	}
	j.pruneLocked(now)
	if len(j.entries) >= maxJournalEntries {
		return journalEntry{}, false, fmt.Errorf("%w: %d unexpired actions", ErrJournalFull, len(j.entries))
	}
	j.entries[e.Action] = e
	if err := j.saveLocked(); err != nil {
		delete(j.entries, e.Action)
		return journalEntry{}, false, err
	}
	return e, true, nil
}

// prune drops the entries of actions that expired (with a grace period) and
// saves the journal if it changed.
func (j *journal) prune(now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pruneLocked(now) {
		return j.saveLocked()
	}
	return nil
}

func (j *journal) pruneLocked(now time.Time) bool {
	changed := false
	for id, e := range j.entries {
		if now.After(e.ExpireAfter.Add(journalGrace)) {
			delete(j.entries, id)
			changed = true
		}
	}
	return changed
}

func (j *journal) saveLocked() error {
	if j.memory {
		return nil
	}
	data, err := encodeJournal(j.epoch, j.entries)
	if err != nil {
		return err
	}
	return atomicfile.Write(j.path, data, 0o600)
}

// encodeJournal encodes a journal file, entries in order of action ID.
func encodeJournal(epoch time.Time, entries map[uint64]journalEntry) ([]byte, error) {
	f := journalFile{V: 1, Epoch: epoch, Entries: make([]journalEntry, 0, len(entries))}
	for _, e := range entries {
		f.Entries = append(f.Entries, e)
	}
	sort.Slice(f.Entries, func(a, b int) bool { return f.Entries[a].Action < f.Entries[b].Action })
	data, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode journal: %w", err)
	}
	return data, nil
}

// outbox keeps results on disk until the server acknowledges them.
type outbox struct {
	dir string
	mu  sync.Mutex
	ids map[uint64]bool
	// mem, when not nil, holds the results instead of files in dir
	// (Options.MemoryState).
	mem map[uint64][]byte
}

// newMemoryOutbox returns an empty outbox kept in memory only.
func newMemoryOutbox() *outbox {
	return &outbox{ids: map[uint64]bool{}, mem: map[uint64][]byte{}}
}

// parseResultFile decodes an outbox file.
func parseResultFile(data []byte) (*action.ResultMessage, error) {
	m, err := action.DecodeResult(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// openOutbox loads the outbox in stateDir/outbox, moving aside files that do
// not parse or whose name does not match their command.
func openOutbox(stateDir string, log *slog.Logger) (*outbox, error) {
	o := &outbox{dir: filepath.Join(stateDir, "outbox"), ids: map[uint64]bool{}}
	if err := ensurePrivateDir(o.dir, log); err != nil {
		return nil, err
	}
	names, err := stateFiles(o.dir, stateDir, log)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		path := filepath.Join(o.dir, n)
		id, ok := idFromName(n)
		if !ok {
			moveAside(stateDir, path, fmt.Errorf("%w: unexpected file name", ErrCorrupt), log)
			continue
		}
		data, err := readFileLimited(path, action.MaxMessageSize)
		if err == nil {
			var m *action.ResultMessage
			m, err = parseResultFile(data)
			if err == nil && m.CommandID != id {
				err = fmt.Errorf("%w: file for command %d holds command %d", ErrCorrupt, id, m.CommandID)
			}
		}
		if err != nil {
			moveAside(stateDir, path, err, log)
			continue
		}
		o.ids[id] = true
	}
	return o, nil
}

// stateFiles lists the regular files of dir, skipping and removing leftover
// temporary files of interrupted writes and moving aside anything else.
func stateFiles(dir, stateDir string, log *slog.Logger) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "."):
			os.Remove(filepath.Join(dir, n))
		case !e.Type().IsRegular():
			moveAside(stateDir, filepath.Join(dir, n), fmt.Errorf("%w: not a regular file", ErrCorrupt), log)
		default:
			names = append(names, n)
		}
	}
	return names, nil
}

func fileName(id uint64) string { return strconv.FormatUint(id, 10) + ".json" }

func idFromName(n string) (uint64, bool) {
	s, ok := strings.CutSuffix(n, ".json")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 || fileName(id) != n {
		return 0, false
	}
	return id, true
}

// has reports whether the outbox holds the result of a command.
func (o *outbox) has(id uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[id]
}

// len returns the number of results kept.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids)
}

// put writes a result to disk.
func (o *outbox) put(id uint64, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mem != nil {
		o.mem[id] = data
		o.ids[id] = true
		return nil
	}
	if err := atomicfile.Write(filepath.Join(o.dir, fileName(id)), data, 0o600); err != nil {
		return err
	}
	o.ids[id] = true
	return nil
}

// get reads a kept result; its error wraps os.ErrNotExist when the result
// is not kept.
func (o *outbox) get(id uint64) ([]byte, error) {
	if o.mem != nil {
		o.mu.Lock()
		defer o.mu.Unlock()
		data, ok := o.mem[id]
		if !ok {
			return nil, fmt.Errorf("result of command %d: %w", id, os.ErrNotExist)
		}
		return data, nil
	}
	return readFileLimited(filepath.Join(o.dir, fileName(id)), action.MaxMessageSize)
}

// ack removes the results of acknowledged commands and returns how many it
// removed.
func (o *outbox) ack(ids []uint64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, id := range ids {
		if !o.ids[id] {
			continue
		}
		if o.mem != nil {
			delete(o.mem, id)
			delete(o.ids, id)
			n++
			continue
		}
		if err := os.Remove(filepath.Join(o.dir, fileName(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("remove acknowledged result %d: %w", id, err)
		}
		delete(o.ids, id)
		n++
	}
	if n > 0 && o.mem == nil {
		return n, atomicfile.SyncDir(o.dir)
	}
	return n, nil
}

// list returns the kept command IDs in increasing order.
func (o *outbox) list() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]uint64, 0, len(o.ids))
	for id := range o.ids {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// inbox keeps every received command on disk until it is answered. Files are
// named by a local sequence number, since a command that does not decode has
// no trustworthy ID.
type inbox struct {
	dir string
	// memory keeps commands in memory only (Options.MemoryState).
	memory bool
	mu     sync.Mutex
	next   uint64
	n      int
}

// newMemoryInbox returns an empty inbox kept in memory only.
func newMemoryInbox() *inbox { return &inbox{memory: true} }

// inboxItem is one command waiting in the inbox.
type inboxItem struct {
	path string
	data []byte
}

// openInbox opens stateDir/inbox and returns the commands left in it, oldest
// first.
func openInbox(stateDir string, log *slog.Logger) (*inbox, []inboxItem, error) {
	in := &inbox{dir: filepath.Join(stateDir, "inbox")}
	if err := ensurePrivateDir(in.dir, log); err != nil {
		return nil, nil, err
	}
	names, err := stateFiles(in.dir, stateDir, log)
	if err != nil {
		return nil, nil, err
	}
	type seqName struct {
		seq  uint64
		name string
	}
	var found []seqName
	for _, n := range names {
		seq, ok := idFromName(n)
		if !ok {
			moveAside(stateDir, filepath.Join(in.dir, n), fmt.Errorf("%w: unexpected file name", ErrCorrupt), log)
			continue
		}
		found = append(found, seqName{seq, n})
	}
	sort.Slice(found, func(a, b int) bool { return found[a].seq < found[b].seq })
	if len(found) > maxInbox {
		for _, f := range found[maxInbox:] {
			moveAside(stateDir, filepath.Join(in.dir, f.name),
				fmt.Errorf("%w: more than %d commands in the inbox", ErrCorrupt, maxInbox), log)
		}
		found = found[:maxInbox]
	}
	in.next = uint64(time.Now().UnixNano())
	var items []inboxItem
	for _, f := range found {
		path := filepath.Join(in.dir, f.name)
		data, err := readFileLimited(path, action.MaxMessageSize)
		if err != nil {
			moveAside(stateDir, path, err, log)
			continue
		}
		if f.seq >= in.next {
			in.next = f.seq + 1
		}
		items = append(items, inboxItem{path: path, data: data})
	}
	in.n = len(items)
	return in, items, nil
}

// add writes a received command to disk, or returns false if the inbox is
// full.
func (in *inbox) add(data []byte) (inboxItem, bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.n >= maxInbox {
		return inboxItem{}, false, nil
	}
	in.next++
	if in.memory {
		in.n++
		return inboxItem{data: data}, true, nil
	}
	path := filepath.Join(in.dir, fileName(in.next))
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return inboxItem{}, false, err
	}
	in.n++
	return inboxItem{path: path, data: data}, true, nil
}

// done removes an answered command.
func (in *inbox) done(it inboxItem) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.memory {
		in.n--
		return nil
	}
	if err := atomicfile.Remove(it.path); err != nil {
		return err
	}
	in.n--
	return nil
}
