package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// chunkSize is how much a worker reads at a time.
const chunkSize = 256 << 10

// errStopped is returned by reads when the walk was told to stop.
var errStopped = errors.New("search stopped")

// errNotRegular is returned by opens of a file that is no longer a regular
// file (a FIFO or a device took its place since the walk listed it): it is
// counted as skipped, like the special files the walk sees as such.
var errNotRegular = errors.New("not a regular file")

// worker walks directories and checks files; each has its own buffers and
// hashes, so that files are checked without allocating.
type worker struct {
	e     *engine
	stats Statistics

	// searches applying to the files of the current directory
	gen    int
	mark   []int
	active []*search
	states []fileState
	hits   []int // indices into states of the searches that matched

	buf     []byte
	f       rfile
	br      *bufio.Reader
	gz      gzip.Reader
	hashers [numHashes]hash.Hash
	views   [2]view // raw, gunzipped
	isGzip  bool    // the current file is read through gunzip for decompress searches
	pos     [maxLits]int
	mode    string // the current file's mode string, when computed
}

// view is what is computed while reading one file one way (as it is, or
// through gunzip): the hashes and the content regexes of the searches
// that read it that way.
type view struct {
	kinds   hashSet
	any     []int // regexes that must match some line
	every   []int // regexes that must match every line (macroal)
	inAny   []bool
	inEvery []bool
	found   []bool // per regex: some line matched
	failed  []bool // per regex: some line did not match
	nFound  int
	nFailed int
	lines   int
	digests [numHashes][]byte
	sums    [numHashes][64]byte
}

// fileState is one search's evaluation of the current file.
type fileState struct {
	s       *search
	metaAll bool // every name and metadata filter matched
	metaAny bool // some name or metadata filter matched
	read    bool // the content and hash filters are evaluated
}

// Read buffers are reused across runs: a process that runs many searches
// (the fleet simulator, mig -t local over many paths) does not allocate and
// clear 320 KiB per run and worker.
var (
	bufPool    = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

func newWorker(e *engine) *worker {
	w := &worker{
		e:    e,
		mark: make([]int, len(e.r.searches)),
		buf:  *bufPool.Get().(*[]byte),
	}
	w.br = readerPool.Get().(*bufio.Reader)
	w.br.Reset(&w.f)
	n := len(e.r.regexes)
	for i := range w.views {
		v := &w.views[i]
		v.inAny, v.inEvery = make([]bool, n), make([]bool, n)
		v.found, v.failed = make([]bool, n), make([]bool, n)
	}
	return w
}

func (v *view) reset() {
	for _, idx := range v.any {
		v.inAny[idx], v.found[idx] = false, false
	}
	for _, idx := range v.every {
		v.inEvery[idx], v.failed[idx] = false, false
	}
	v.any, v.every = v.any[:0], v.every[:0]
	v.nFound, v.nFailed, v.lines = 0, 0, 0
	v.kinds = hashSet{}
	v.digests = [numHashes][]byte{}
}

func (v *view) wanted() bool {
	return len(v.any)+len(v.every) > 0 || !v.kinds.empty()
}

func (v *view) addAny(idx int) {
	if !v.inAny[idx] {
		v.inAny[idx] = true
		v.any = append(v.any, idx)
	}
}

func (v *view) addEvery(idx int) {
	if !v.inEvery[idx] {
		v.inEvery[idx] = true
		v.every = append(v.every, idx)
	}
}

// addSearch plans what s needs from a read of the file.
func (v *view) addSearch(s *search) {
	v.kinds.add(s.needs)
	if s.returnSHA256 {
		v.kinds[hashSHA256] = true
	}
	for _, c := range s.contents {
		if s.macroal && !c.negate {
			v.addEvery(c.idx)
		} else {
			v.addAny(c.idx)
		}
	}
}

// merge adds what o plans to v.
func (v *view) merge(o *view) {
	v.kinds.add(o.kinds)
	for _, idx := range o.any {
		v.addAny(idx)
	}
	for _, idx := range o.every {
		v.addEvery(idx)
	}
}

// decided reports whether reading further changes no content filter.
func (v *view) decided() bool {
	return v.nFound == len(v.any) && v.nFailed == len(v.every)
}

// viewFor returns the view search s reads the current file through.
func (w *worker) viewFor(s *search) *view {
	if s.decompress && w.isGzip {
		return &w.views[1]
	}
	return &w.views[0]
}

// file checks one regular file of dir against the active searches. path
// is empty or dir joined with name; info is nil or the file's metadata.
func (w *worker) file(dir, name, path string, info fs.FileInfo) {
	w.stats.FilesCount++
	w.mode = ""
	states := w.states[:0]
	needRead := false
	for _, s := range w.active {
		if w.e.limited[s.index].Load() {
			continue
		}
		if info == nil && s.needsStat() {
			if path == "" {
				path = join(dir, name)
			}
			var err error
			if info, err = os.Lstat(path); err != nil {
				w.stats.OpenFailed++
				w.e.addError("%v", err)
				return
			}
		}
		st := fileState{s: s}
		st.metaAll, st.metaAny = w.meta(s, name, info)
		switch {
		case !s.matchAny && !st.metaAll:
			continue
		case s.readCount() > 0:
			st.read = true
			needRead = true
		case s.matchAny && s.metaCount() > 0 && !st.metaAny:
			continue
		}
		states = append(states, st)
	}
	w.states = states
	if len(states) == 0 {
		return
	}
	if path == "" {
		path = join(dir, name)
	}
	var readErr error
	w.isGzip = false
	if needRead {
		raw, gz := &w.views[0], &w.views[1]
		raw.reset()
		gz.reset()
		for _, st := range states {
			if st.read {
				w.plan(st.s).addSearch(st.s)
			}
		}
		readErr = w.read(path)
		switch {
		case errors.Is(readErr, errStopped):
			return
		case errors.Is(readErr, errNotRegular):
			w.stats.Skipped++
			return
		case readErr != nil:
			w.stats.OpenFailed++
			w.e.addError("%v", readErr)
		}
	}
	hits := w.hits[:0]
	for i := range states {
		if w.decide(&states[i], readErr) {
			hits = append(hits, i)
		}
	}
	w.hits = hits
	if len(hits) == 0 {
		return
	}
	if info == nil {
		var err error
		if info, err = os.Lstat(path); err != nil {
			w.stats.OpenFailed++
			w.e.addError("%v", err)
			return
		}
	}
	fi := FileInfo{
		Size:         info.Size(),
		Mode:         w.modeString(info),
		LastModified: info.ModTime().Format(TimeFormat),
	}
	matches := make([]Match, len(hits))
	for j, i := range hits {
		st := &states[i]
		matches[j] = Match{File: path, FileInfo: fi}
		if st.s.matchAny {
			matches[j].Checks = w.checks(st, name, info, readErr)
		}
		if st.s.returnSHA256 && readErr == nil {
			if d := w.viewFor(st.s).digests[hashSHA256]; d != nil {
				matches[j].FileInfo.SHA256 = hex.EncodeToString(d)
			}
		}
	}
	for j, i := range hits {
		st := &states[i]
		if st.s.returnSHA256 && matches[j].FileInfo.SHA256 == "" {
			sum, err := w.sha256Of(path, st.s.decompress)
			switch {
			case errors.Is(err, errStopped):
				return
			case errors.Is(err, errNotRegular):
				w.stats.Skipped++
				return
			case err != nil:
				w.stats.OpenFailed++
				w.e.addError("%v", err)
			}
			matches[j].FileInfo.SHA256 = sum
		}
		w.e.record(st.s, matches[j])
	}
}

// plan returns the view a search plans its reads in: the gunzipped one
// for decompress searches (merged into the raw one when the file turns out
// not to be a gzip file).
func (w *worker) plan(s *search) *view {
	if s.decompress {
		return &w.views[1]
	}
	return &w.views[0]
}

// sha256Of reads the file at path for its SHA-256 alone.
func (w *worker) sha256Of(path string, decompress bool) (string, error) {
	raw, gz := &w.views[0], &w.views[1]
	raw.reset()
	gz.reset()
	v := raw
	if decompress {
		v = gz
	}
	v.kinds[hashSHA256] = true
	w.isGzip = false
	if err := w.read(path); err != nil {
		return "", err
	}
	if decompress && w.isGzip {
		v = gz
	} else {
		v = raw
	}
	return hex.EncodeToString(v.digests[hashSHA256]), nil
}

func (w *worker) modeString(info fs.FileInfo) string {
	if w.mode == "" {
		w.mode = info.Mode().String()
	}
	return w.mode
}

// meta evaluates a search's name and metadata filters on a file: whether
// all of them match, and whether any does. info may be nil when the search
// has no metadata filter. With matchall it stops at the first failure.
func (w *worker) meta(s *search, name string, info fs.FileInfo) (all, anyOK bool) {
	all = true
	note := func(ok bool) bool {
		all = all && ok
		anyOK = anyOK || ok
		return !ok && !s.matchAny
	}
	for i := range s.names {
		if note(s.names[i].matchName(name)) {
			return false, anyOK
		}
	}
	for i := range s.sizes {
		if note(s.sizes[i].match(info.Size())) {
			return false, anyOK
		}
	}
	for i := range s.modes {
		f := &s.modes[i]
		if note(f.re.MatchString(w.modeString(info)) != f.invert) {
			return false, anyOK
		}
	}
	for i := range s.mtimes {
		if note(s.mtimes[i].match(info.ModTime(), w.e.now)) {
			return false, anyOK
		}
	}
	return all, anyOK
}

// matchName applies a name filter, with its negation and mismatch.
func (f *regexFilter) matchName(name string) bool {
	ok := (f.pre == nil || f.pre.containsString(name)) && f.re.MatchString(name)
	return ok != f.negate != f.invert
}

func (f *sizeFilter) match(size int64) bool {
	var ok bool
	switch f.op {
	case '<':
		ok = size < f.n
	case '>':
		ok = size > f.n
	default:
		ok = size == f.n
	}
	return ok != f.invert
}

// match applies an mtime filter to a modification time, relative to now.
func (f *mtimeFilter) match(mtime, now time.Time) bool {
	cutoff := now.Add(-f.age)
	ok := !mtime.Before(cutoff)
	if f.older {
		ok = mtime.Before(cutoff)
	}
	return ok != f.invert
}

// decide combines a search's filters on the current file, once it is read
// (readErr is the read's error: the content and hash filters then do not
// match).
func (w *worker) decide(st *fileState, readErr error) bool {
	s := st.s
	if !st.read {
		if s.matchAny && s.metaCount() > 0 {
			return st.metaAny
		}
		return st.metaAll
	}
	all, anyOK := st.metaAll, st.metaAny
	v := w.viewFor(s)
	for i := range s.contents {
		ok := readErr == nil && w.contentOK(s, &s.contents[i], v)
		all, anyOK = all && ok, anyOK || ok
	}
	for i := range s.hashes {
		ok := readErr == nil && s.hashes[i].match(v) != s.hashes[i].invert
		all, anyOK = all && ok, anyOK || ok
	}
	if s.matchAny {
		return anyOK
	}
	return all
}

// contentOK evaluates a content filter on a read view.
func (w *worker) contentOK(s *search, c *contentFilter, v *view) bool {
	var ok bool
	switch {
	case c.negate:
		ok = !v.found[c.idx]
	case s.macroal:
		ok = !v.failed[c.idx] && v.lines > 0
	default:
		ok = v.found[c.idx]
	}
	return ok != c.invert
}

// matchValue reports whether one of the file's hashes is one of f's
// values (before mismatch), and which.
func (f *hashFilter) matchValue(v *view) (string, bool) {
	for kind, need := range f.kinds {
		d := v.digests[kind]
		if !need || d == nil {
			continue
		}
		if k, ok := f.values[string(d)]; ok && k == hashKind(kind) {
			return hex.EncodeToString(d), true
		}
	}
	return "", false
}

// sortedValues returns f's values in hexadecimal, sorted.
func (f *hashFilter) sortedValues() []string {
	out := make([]string, 0, len(f.values))
	for d := range f.values {
		out = append(out, hex.EncodeToString([]byte(d)))
	}
	sort.Strings(out)
	return out
}

func (f *hashFilter) match(v *view) bool {
	_, ok := f.matchValue(v)
	return ok
}

// checks lists the filters of a matchany search that matched the file.
func (w *worker) checks(st *fileState, name string, info fs.FileInfo, readErr error) *Checks {
	s := st.s
	c := &Checks{}
	for i := range s.names {
		if s.names[i].matchName(name) {
			c.Names = append(c.Names, s.names[i].src)
		}
	}
	for i := range s.sizes {
		if s.sizes[i].match(info.Size()) {
			c.Sizes = append(c.Sizes, s.sizes[i].src)
		}
	}
	for i := range s.modes {
		f := &s.modes[i]
		if f.re.MatchString(w.modeString(info)) != f.invert {
			c.Modes = append(c.Modes, f.src)
		}
	}
	for i := range s.mtimes {
		if s.mtimes[i].match(info.ModTime(), w.e.now) {
			c.Mtimes = append(c.Mtimes, s.mtimes[i].src)
		}
	}
	if !st.read || readErr != nil {
		return c
	}
	v := w.viewFor(s)
	for i := range s.contents {
		if w.contentOK(s, &s.contents[i], v) {
			c.Contents = append(c.Contents, s.contents[i].src)
		}
	}
	for i := range s.hashes {
		h := &s.hashes[i]
		val, ok := h.matchValue(v)
		if ok == h.invert {
			continue
		}
		if val == "" {
			val = "!" + strings.Join(h.sortedValues(), ",!")
		}
		switch h.kind {
		case kindMD5:
			c.MD5 = append(c.MD5, val)
		case kindSHA1:
			c.SHA1 = append(c.SHA1, val)
		case kindSHA2:
			c.SHA2 = append(c.SHA2, val)
		case kindSHA3:
			c.SHA3 = append(c.SHA3, val)
		}
	}
	return c
}

// read reads the file at path once per view it needs, computing the
// planned hashes and running the planned regexes.
func (w *worker) read(path string) error {
	raw, gz := &w.views[0], &w.views[1]
	if err := w.f.open(path); err != nil {
		return err
	}
	defer w.f.Close()
	n, err := w.f.Read(w.buf[:chunkSize])
	eof := err == io.EOF
	if err != nil && !eof {
		return fmt.Errorf("read %s: %w", path, err)
	}
	w.isGzip = gz.wanted() && n >= 2 && w.buf[0] == 0x1f && w.buf[1] == 0x8b
	if !w.isGzip {
		raw.merge(gz)
	}
	if raw.wanted() {
		if err := w.stream(&w.f, n, eof, raw); err != nil {
			return w.readError(path, err)
		}
	}
	if !w.isGzip {
		return nil
	}
	if err := w.f.rewind(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	w.br.Reset(&w.f)
	if err := w.gz.Reset(w.br); err != nil {
		return fmt.Errorf("read %s through gunzip: %w", path, err)
	}
	if err := w.stream(&w.gz, 0, false, gz); err != nil {
		return w.readError(path, err)
	}
	return nil
}

func (w *worker) readError(path string, err error) error {
	if errors.Is(err, errStopped) {
		return err
	}
	return fmt.Errorf("read %s: %w", path, err)
}

// hasher returns the worker's hash of kind k, reset.
func (w *worker) hasher(k hashKind) hash.Hash {
	h := w.hashers[k]
	if h == nil {
		switch k {
		case hashMD5:
			h = md5.New()
		case hashSHA1:
			h = sha1.New()
		case hashSHA256:
			h = sha256.New()
		case hashSHA384:
			h = sha512.New384()
		case hashSHA512:
			h = sha512.New()
		case hashSHA3224:
			h = sha3.New224()
		case hashSHA3256:
			h = sha3.New256()
		case hashSHA3384:
			h = sha3.New384()
		default:
			h = sha3.New512()
		}
		w.hashers[k] = h
	}
	h.Reset()
	return h
}

// stream reads src to its end, feeding v's hashes and running v's regexes
// on each line. The first have bytes of w.buf were read from src already
// (eof: and src is at its end). Without hashes, it stops as soon as every
// regex is decided. Lines are split on '\n', and a '\r' before it is
// dropped; a line longer than MaxLineSize is matched in pieces.
func (w *worker) stream(src io.Reader, have int, eof bool, v *view) error {
	var hs [numHashes]hash.Hash
	hashing := false
	for k, need := range v.kinds {
		if need {
			hs[k] = w.hasher(hashKind(k))
			hashing = true
		}
	}
	scanning := !v.decided()
	buf := w.buf
	start, end, seen := 0, have, 0
	write := func(p []byte) {
		for _, h := range hs {
			if h != nil {
				h.Write(p)
			}
		}
	}
	write(buf[:end])
	zeros := 0
	for {
		if scanning {
			if i := bytes.LastIndexByte(buf[max(start, seen):end], '\n'); i >= 0 {
				cut := max(start, seen) + i + 1
				w.scan(buf[start:cut], v)
				start = cut
			} else if end-start >= MaxLineSize {
				w.scan(buf[start:end], v)
				start = end
			}
			seen = end
			if v.decided() {
				scanning = false
				if !hashing {
					return nil
				}
			}
		}
		if !scanning {
			start = end
		}
		if eof {
			if scanning && start < end {
				w.scan(buf[start:end], v)
			}
			break
		}
		if w.e.stop.Load() {
			return errStopped
		}
		if start == end {
			start, end, seen = 0, 0, 0
		}
		if len(buf)-end < chunkSize/2 {
			if start > 0 {
				copy(buf, buf[start:end])
				end -= start
				seen -= start
				start = 0
			}
			if len(buf)-end < chunkSize/2 {
				nb := make([]byte, 2*len(buf))
				copy(nb, buf[:end])
				buf = nb
				w.buf = nb
			}
		}
		n, err := src.Read(buf[end:])
		if n > 0 {
			write(buf[end : end+n])
			end += n
			zeros = 0
		}
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			w.shrink()
			return err
		case n == 0:
			if zeros++; zeros > 100 {
				w.shrink()
				return io.ErrNoProgress
			}
		}
	}
	w.shrink()
	for k, h := range hs {
		if h != nil {
			v.digests[k] = h.Sum(v.sums[k][:0])
		}
	}
	return nil
}

// release returns the worker's buffers to the pools once its run is over.
func (w *worker) release() {
	if cap(w.buf) == chunkSize {
		b := w.buf[:chunkSize]
		bufPool.Put(&b)
	}
	w.buf = nil
	w.br.Reset(nil)
	readerPool.Put(w.br)
	w.br = nil
}

// shrink gives back a buffer grown for a long line.
func (w *worker) shrink() {
	if len(w.buf) > 4*chunkSize {
		w.buf = make([]byte, chunkSize)
	}
}

// scan runs v's undecided regexes on block, whole lines (each ending with
// '\n', except maybe the last one).
func (w *worker) scan(block []byte, v *view) {
	for _, idx := range v.any {
		if !v.found[idx] && w.scanAny(block, idx) {
			v.found[idx] = true
			v.nFound++
		}
	}
	if len(v.every) == 0 || v.nFailed == len(v.every) {
		return
	}
	for rest := block; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		v.lines++
		for _, idx := range v.every {
			if !v.failed[idx] && !w.e.r.regexes[idx].re.Match(line) {
				v.failed[idx] = true
				v.nFailed++
			}
		}
		if v.nFailed == len(v.every) {
			return
		}
	}
}

// nextLine splits the first line off block, without its end of line.
func nextLine(block []byte) (line, rest []byte) {
	i := bytes.IndexByte(block, '\n')
	if i < 0 {
		return block, nil
	}
	line, rest = block[:i], block[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// scanAny reports whether regex idx matches a line of block. With a
// prefilter, only the lines holding one of its literals are matched.
func (w *worker) scanAny(block []byte, idx int) bool {
	cr := &w.e.r.regexes[idx]
	if cr.pre == nil {
		for rest := block; len(rest) > 0; {
			var line []byte
			line, rest = nextLine(rest)
			if cr.re.Match(line) {
				return true
			}
		}
		return false
	}
	pos := w.pos[:len(cr.pre.lits)]
	for i := range pos {
		pos[i] = -2
	}
	for from := 0; from < len(block); {
		c := cr.pre.index(block, from, pos)
		if c < 0 {
			return false
		}
		ls := from + bytes.LastIndexByte(block[from:c], '\n') + 1
		le := len(block)
		if i := bytes.IndexByte(block[c:], '\n'); i >= 0 {
			le = c + i + 1
		}
		line, _ := nextLine(block[ls:le])
		if cr.re.Match(line) {
			return true
		}
		from = le
	}
	return false
}
