// Package memory is MIG's memory module: it finds processes by executable
// name, by the libraries (and other files) they have mapped, and by what
// their memory contains, and returns which processes matched and which
// filters they matched. Raw memory never leaves the endpoint: a result holds
// a pid, a process name, the filters that matched and, for a content or
// bytes filter, the address of its first match.
//
// # Parameters
//
// The parameters hold named searches (MIG's format):
//
//	{"searches": {"<label>": {
//	    "names":     ["^sshd$"],             // regexes on the executable's base name
//	    "libraries": ["libssl\\.so"],        // regexes on mapped file paths
//	    "contents":  ["AKIA[0-9A-Z]{16}"],   // regexes over memory
//	    "bytes":     ["deadbeef"],           // byte strings in hexadecimal
//	    "options": {"matchall": true, "matchany": false,
//	                "offset": 0, "maxlength": 0, "window": 4096}}}}
//
// Every name, library, content and bytes entry is one filter. A process
// matches a search when all of its filters match (matchall, the default) or
// when any does (matchany).
//
// # Scanning
//
// On Linux, processes are listed from /proc, their mappings read from
// /proc/<pid>/maps and their memory from /proc/<pid>/mem, in pure Go. Name
// and library filters are checked first, and memory is read only when it can
// still change the answer. Each readable region is read once for all the
// content and bytes filters of all searches, in chunks of ChunkSize bytes
// whose borders fall on multiples of ChunkSize; the last bytes of a chunk are
// searched again with the next one (the overlap: the longest bytes filter
// minus one byte, or the window of the searches with content regexes,
// whichever is longer), so that a match that straddles a chunk border is
// found as long as it is no longer than the overlap. Regions that cannot be
// read (guard pages, device mappings, [vvar]) are skipped and counted.
//
// offset skips that many bytes of a process's readable memory (regions in
// address order), which are not read, and maxlength (when not 0) stops after
// that many more bytes; a match must lie entirely inside that window. A process's scan stops as soon as every content and bytes
// filter has matched, or, with matchany, as soon as one filter has matched.
//
// The module does not scan its own process, nor its parent when the parent
// runs the same executable (the agent that started it): both hold the
// parameters themselves.
//
// # Results
//
// Elements map each label to the processes that matched (see Elements),
// sorted by pid; statistics are a Statistics. FoundAnything is true when any
// process matched. On platforms other than Linux the module returns a
// failed result saying it is not supported there.
package memory

import (
	"errors"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "memory"

// Limits and defaults.
const (
	// ChunkSize is how much memory is read and searched at once.
	ChunkSize = 1 << 20
	// DefaultWindow is the overlap kept between chunks for content regexes.
	DefaultWindow = 4096
	// MaxWindow bounds the window option.
	MaxWindow = ChunkSize / 2
	// MaxSearches bounds the searches of one operation.
	MaxSearches = 64
	// MaxFilters bounds the filters of one search.
	MaxFilters = 64
	// MaxRegexBytes bounds one regex.
	MaxRegexBytes = 4096
	// MaxNeedleBytes bounds one bytes filter (decoded).
	MaxNeedleBytes = 4096
)

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid memory parameters")

func init() { module.Register(memoryModule{}) }

type memoryModule struct{}

func (memoryModule) Name() string { return Name }

func (memoryModule) Summary() string {
	return "find processes by name, loaded library and memory content; return pids and names, never memory"
}

func (memoryModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}
