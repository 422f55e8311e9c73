package file

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Elements are the elements of the module's result: the matches of each
// search, by label. Every search has an entry, empty when it found nothing.
type Elements map[string][]Match

// Match is one file a search found.
type Match struct {
	File     string   `json:"file"`
	FileInfo FileInfo `json:"fileinfo"`
	// Checks lists the filters that matched the file in a matchany
	// search. It is omitted for a matchall search, where every filter
	// matched.
	Checks *Checks `json:"checks,omitempty"`
}

// Checks are filters of a search, as they were given (hash values in
// lower case).
type Checks struct {
	Names    []string `json:"names,omitempty"`
	Sizes    []string `json:"sizes,omitempty"`
	Modes    []string `json:"modes,omitempty"`
	Mtimes   []string `json:"mtimes,omitempty"`
	Contents []string `json:"contents,omitempty"`
	MD5      []string `json:"md5,omitempty"`
	SHA1     []string `json:"sha1,omitempty"`
	SHA2     []string `json:"sha2,omitempty"`
	SHA3     []string `json:"sha3,omitempty"`
}

// FileInfo is the metadata returned for a file.
type FileInfo struct {
	Size int64 `json:"size"`
	// Mode is the file mode as ls shows it, "-rw-r--r--".
	Mode string `json:"mode"`
	// LastModified is in the agent's time zone, in TimeFormat.
	LastModified string `json:"lastmodified"`
	// SHA256 is set when the search asked for it (returnsha256).
	SHA256 string `json:"sha256,omitempty"`
}

// TimeFormat is the layout of FileInfo.LastModified.
const TimeFormat = "2006-01-02 15:04:05 -0700 MST"

// Statistics are the statistics of the module's result.
type Statistics struct {
	// FilesCount is the number of files checked against at least one search.
	FilesCount int `json:"filescount"`
	// OpenFailed counts files and directories that could not be read,
	// including those that vanished during the walk.
	OpenFailed int `json:"openfailed"`
	// Skipped counts devices, FIFOs and sockets, which are never opened.
	Skipped int `json:"skipped"`
	// TotalHits is the number of matches returned.
	TotalHits int `json:"totalhits"`
	// ExecTime is how long the module ran, as a Go duration ("1.2s").
	ExecTime string `json:"exectime"`
}

// scope is one path of one search.
type scope struct {
	s    *search
	root string
}

// contentRegex is a unique content regex with its prefilter.
type contentRegex struct {
	re  *regexp.Regexp
	pre *prefilter
}

// runner runs compiled searches; it implements module.Runner.
type runner struct {
	searches   []*search
	scopes     []scope
	regexes    []contentRegex // unique content regexes
	regexIndex map[string]int
}

// engine is the state of one Run, shared by its workers.
type engine struct {
	r     *runner
	now   time.Time
	stop  atomic.Bool // the context ended
	cause error

	mu   sync.Mutex
	cond *sync.Cond
	jobs []string // directories to walk
	busy int      // workers inside a job

	resMu     sync.Mutex
	matches   [][]Match
	limited   []atomic.Bool
	nLimited  atomic.Int32
	errs      []string
	notes     []string
	maxErrors int
	dropped   int
}

// Run walks the searches' paths with at most env.MaxProcs workers (all
// CPUs when it is 0) and returns the result.
func (r *runner) Run(ctx context.Context, env module.Env) action.Result {
	start := time.Now()
	n := env.MaxProcs
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	e := &engine{
		r:       r,
		now:     start,
		matches: make([][]Match, len(r.searches)),
		limited: make([]atomic.Bool, len(r.searches)),
	}
	e.cond = sync.NewCond(&e.mu)
	for _, s := range r.searches {
		e.maxErrors = max(e.maxErrors, s.maxErrors)
	}
	if err := ctx.Err(); err != nil {
		e.cause = context.Cause(ctx)
		e.stop.Store(true)
	}
	stopWatch := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cause = context.Cause(ctx)
		e.stop.Store(true)
		e.cond.Broadcast()
		e.mu.Unlock()
	})
	workers := make([]*worker, n)
	for i := range workers {
		workers[i] = newWorker(e)
	}
	// Roots are checked here, before the workers start: a root that is a
	// file is checked at once, a directory becomes the first jobs.
	for _, root := range r.walkRoots() {
		if e.stopped() {
			break
		}
		info, err := os.Stat(root)
		if err != nil {
			workers[0].stats.OpenFailed++
			e.addError("%v", err)
			continue
		}
		if info.IsDir() {
			e.jobs = append(e.jobs, root)
			continue
		}
		w := workers[0]
		w.active = w.activeFor(root, true)
		if len(w.active) == 0 {
			continue
		}
		if !info.Mode().IsRegular() {
			w.stats.Skipped++
			continue
		}
		w.file(filepath.Dir(root), filepath.Base(root), root, info)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	wg.Wait()
	stopWatch()
	var stats Statistics
	for _, w := range workers {
		stats.FilesCount += w.stats.FilesCount
		stats.OpenFailed += w.stats.OpenFailed
		stats.Skipped += w.stats.Skipped
		w.release()
	}
	return e.result(stats, time.Since(start))
}

// walkRoots returns the paths to walk: every search path, except those
// inside another one that is reached from it without crossing a symbolic
// link, which the walk of the outer path covers.
func (r *runner) walkRoots() []string {
	var roots []string
	seen := map[string]bool{}
	for _, sc := range r.scopes {
		if !seen[sc.root] {
			seen[sc.root] = true
			roots = append(roots, sc.root)
		}
	}
	sort.Strings(roots)
	var out []string
	for _, root := range roots {
		covered := false
		for _, outer := range out {
			if root != outer && under(root, outer) && noSymlinkBetween(outer, root) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, root)
		}
	}
	return out
}

// noSymlinkBetween reports whether inner, a path under outer, resolves to
// the same place as walking down from outer does.
func noSymlinkBetween(outer, inner string) bool {
	ro, err := filepath.EvalSymlinks(outer)
	if err != nil {
		return false
	}
	ri, err := filepath.EvalSymlinks(inner)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(outer, inner)
	if err != nil {
		return false
	}
	return ri == filepath.Join(ro, rel)
}

// under reports whether p is root or inside it, lexically.
func under(p, root string) bool {
	if p == root {
		return true
	}
	prefix := root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	return strings.HasPrefix(p, prefix)
}

// depth returns how many path elements p, which is under root, has below
// it.
func depth(p, root string) int {
	if p == root {
		return 0
	}
	rest := strings.TrimPrefix(p[len(root):], string(filepath.Separator))
	return strings.Count(rest, string(filepath.Separator)) + 1
}

// stopped reports whether the walk should stop: its context ended or every
// search reached its match limit.
func (e *engine) stopped() bool {
	return e.stop.Load() || int(e.nLimited.Load()) == len(e.r.searches)
}

func (e *engine) addError(format string, args ...any) {
	e.resMu.Lock()
	defer e.resMu.Unlock()
	if len(e.errs) < e.maxErrors {
		e.errs = append(e.errs, fmt.Sprintf(format, args...))
		return
	}
	e.dropped++
}

// next returns the next directory to walk, waiting while other workers may
// still add some; false means the walk is over.
func (e *engine) next() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.jobs) == 0 && e.busy > 0 && !e.stopped() {
		e.cond.Wait()
	}
	if len(e.jobs) == 0 || e.stopped() {
		e.cond.Broadcast()
		return "", false
	}
	j := e.jobs[len(e.jobs)-1]
	e.jobs = e.jobs[:len(e.jobs)-1]
	e.busy++
	return j, true
}

// done ends a job, adding the directories it found.
func (e *engine) done(dirs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busy--
	e.jobs = append(e.jobs, dirs...)
	if len(dirs) > 0 || e.busy == 0 {
		e.cond.Broadcast()
	}
}

// add adds directories to walk from inside a job.
func (e *engine) add(dirs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.jobs = append(e.jobs, dirs...)
	e.cond.Broadcast()
}

// record adds a match to search s unless it reached its match limit.
func (e *engine) record(s *search, m Match) {
	e.resMu.Lock()
	defer e.resMu.Unlock()
	if e.limited[s.index].Load() {
		return
	}
	e.matches[s.index] = append(e.matches[s.index], m)
	if len(e.matches[s.index]) >= s.matchLimit {
		e.limited[s.index].Store(true)
		e.nLimited.Add(1)
		e.notes = append(e.notes, fmt.Sprintf("search '%s': stopped at the match limit of %d", s.label, s.matchLimit))
	}
}

// result builds the module's result.
func (e *engine) result(stats Statistics, took time.Duration) action.Result {
	el := Elements{}
	for _, s := range e.r.searches {
		m := e.matches[s.index]
		sort.Slice(m, func(i, j int) bool { return m[i].File < m[j].File })
		if m == nil {
			m = []Match{}
		}
		el[s.label] = m
		stats.TotalHits += len(m)
	}
	stats.ExecTime = took.Round(time.Millisecond).String()
	errs := append(e.errs, e.notes...)
	if e.dropped > 0 {
		errs = append(errs, fmt.Sprintf("%d more errors not listed (maxerrors is %d)", e.dropped, e.maxErrors))
	}
	e.mu.Lock() // the context's AfterFunc may still be running
	interrupted, cause := e.stop.Load(), e.cause
	e.mu.Unlock()
	if interrupted {
		errs = append(errs, fmt.Sprintf("search interrupted after %d files: %v", stats.FilesCount, cause))
	}
	elements, err := json.Marshal(el)
	if err != nil {
		return module.FailResult(fmt.Sprintf("encoding elements: %v", err))
	}
	st, err := json.Marshal(stats)
	if err != nil {
		return module.FailResult(fmt.Sprintf("encoding statistics: %v", err))
	}
	return action.Result{
		FoundAnything: stats.TotalHits > 0,
		Success:       !interrupted,
		Elements:      elements,
		Statistics:    st,
		Errors:        errs,
	}
}

// run is a worker's loop: it walks directories until there are none left.
func (w *worker) run() {
	for {
		dir, ok := w.e.next()
		if !ok {
			return
		}
		w.e.done(w.walkDir(dir))
	}
}

// dirBatch is how many directory entries are read at a time.
const dirBatch = 1024

// walkDir checks the files of dir and returns its subdirectories that
// some search needs.
func (w *worker) walkDir(dir string) []string {
	w.active = w.activeFor(dir, false)
	f, err := os.Open(dir)
	if err != nil {
		w.stats.OpenFailed++
		w.e.addError("%v", err)
		return nil
	}
	defer f.Close()
	var subdirs []string
	for {
		entries, err := f.ReadDir(dirBatch)
		for _, ent := range entries {
			if w.e.stopped() {
				return nil
			}
			w.entry(dir, ent, &subdirs)
		}
		if err == io.EOF || (err == nil && len(entries) == 0) {
			break
		}
		if err != nil {
			w.stats.OpenFailed++
			w.e.addError("%v", err)
			break
		}
		if len(subdirs) > 0 && len(entries) == dirBatch {
			// A large directory: let idle workers start on its
			// subdirectories now.
			w.e.add(subdirs)
			subdirs = nil
		}
	}
	return subdirs
}

// entry checks one directory entry.
func (w *worker) entry(dir string, ent fs.DirEntry, subdirs *[]string) {
	name := ent.Name()
	typ := ent.Type()
	switch {
	case typ.IsDir():
		p := join(dir, name)
		if w.descend(p) {
			*subdirs = append(*subdirs, p)
		}
	case typ.IsRegular():
		if w.anyActive() {
			w.file(dir, name, "", nil)
		}
	case typ&fs.ModeSymlink != 0:
		if !w.anyActive() {
			return
		}
		p := join(dir, name)
		info, err := os.Stat(p)
		if err != nil {
			w.stats.OpenFailed++
			w.e.addError("%v", err)
			return
		}
		switch {
		case info.IsDir():
			// Symbolic links to directories are not followed.
		case info.Mode().IsRegular():
			w.file(dir, name, p, info)
		default:
			w.stats.Skipped++
		}
	default:
		if w.anyActive() {
			w.stats.Skipped++
		}
	}
}

func join(dir, name string) string {
	if strings.HasSuffix(dir, string(filepath.Separator)) {
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// descend reports whether some search needs what is inside dir.
func (w *worker) descend(dir string) bool {
	for _, sc := range w.e.r.scopes {
		if w.e.limited[sc.s.index].Load() {
			continue
		}
		if under(dir, sc.root) {
			if depth(dir, sc.root) < sc.s.maxDepth {
				return true
			}
		} else if under(sc.root, dir) {
			return true
		}
	}
	return false
}

// activeFor returns the searches that apply to the files of dir (or, when
// isFile, to the file dir itself).
func (w *worker) activeFor(p string, isFile bool) []*search {
	w.gen++
	active := w.active[:0]
	for _, sc := range w.e.r.scopes {
		s := sc.s
		if w.mark[s.index] == w.gen || !under(p, sc.root) {
			continue
		}
		d := depth(p, sc.root)
		if !isFile {
			d++
		}
		if d <= s.maxDepth {
			w.mark[s.index] = w.gen
			active = append(active, s)
		}
	}
	return active
}

// anyActive reports whether a search that has not reached its match limit
// applies to the files of the current directory.
func (w *worker) anyActive() bool {
	for _, s := range w.active {
		if !w.e.limited[s.index].Load() {
			return true
		}
	}
	return false
}
