// Package file is MIG's file module: it searches an endpoint's file systems
// for files by name, metadata, content and hash, and returns their names
// and metadata, never their contents.
//
// # Parameters
//
// The parameters hold named searches (MIG's format):
//
//	{"searches": {"<label>": {
//	    "paths":    ["/etc", ...],          // absolute; required
//	    "names":    ["^passwd$", ...],      // regexes on the base name
//	    "sizes":    ["<10m", ">1k", "42"],  // bytes; k, m, g, t = 1024^1..4
//	    "modes":    ["^-rwx"],              // regexes on the mode string
//	    "mtimes":   ["<90d", ">5h"],        // within / older than; d, h, m
//	    "contents": ["(?i)^loglevel", ...], // regexes on lines
//	    "md5": [...], "sha1": [...], "sha2": [...], "sha3": [...],
//	    "sha256": [...], "sha384": [...], "sha512": [...], // aliases of sha2
//	    "options": {"maxdepth": 1000, "matchall": true, "matchany": false,
//	                "macroal": false, "mismatch": ["content"],
//	                "matchlimit": 1000, "maxerrors": 30,
//	                "returnsha256": false, "decompress": false}}}}
//
// Each name and content regex is one filter; a leading '!' negates it (a
// name that does not match; a file where no line matches); write `\!` for a
// regex that starts with a literal '!'. Each size, mode and mtime is one
// filter: "<N" is strictly smaller, ">N" strictly larger, "N" equal; "<90d"
// is modified within the last 90 days, ">5h" modified more than 5 hours
// before the search started. Each hash field (md5, sha1, sha2 with its
// aliases, sha3) is one filter that matches when the file's hash is one of
// the listed values, compared case-insensitively; sha2 values pick SHA-256,
// SHA-384 or SHA-512 and sha3 values SHA3-224, SHA3-256, SHA3-384 or
// SHA3-512 by their length (the aliases sha256, sha384 and sha512 accept
// only values of their own length). The mismatch option inverts every
// filter of the kinds it names (name, size, mode, mtime, content, md5,
// sha1, sha2, sha3).
// A file matches a search when all of the search's filters match (matchall,
// the default) or when any does (matchany); a search without filters
// matches every file. With macroal, a content filter matches a file when
// every line matches it (and the file has a line); a negated one, when no
// line matches it. With decompress, a file that starts with the gzip magic
// number is read through gunzip for the search's content filters, hashes
// and returnsha256; a file that has the magic number but is not gzip counts
// as a read failure.
//
// A file directly inside a path is at depth 1; directories are entered only
// while their entries are within maxdepth, and a path that is itself a file
// is at depth 0.
//
// # Walking
//
// Each path is walked once for all searches, by at most Env.MaxProcs
// goroutines (all CPUs when it is 0) that take directories from a shared
// stack. Name filters come first, then metadata filters (a file is stat'ed
// only when a search has size, mode or mtime filters, or when it matched);
// a file is opened only when a search still needs its content or a hash,
// and then read once, streaming, for all searches' content regexes and
// hashes (each hash computed once whatever the number of searches and
// values). Content regexes are not run on every line: the literals that
// every match must contain are taken from the regex's syntax tree and
// searched for in whole buffers, and only the lines holding one are matched
// (see prefilter). Without hashes to compute, reading stops as soon as
// every content filter is decided. The walk stops promptly when the
// context ends (between directory entries and between reads), and when
// every search reached its match limit; which files a search reports when
// it hits its limit depends on the walk's order.
//
// Paths given in a search are followed when they are symbolic links;
// inside the walk, symbolic links to directories are never followed, and
// symbolic links to files are checked under the link's name. Devices,
// FIFOs and sockets are never read (they are counted as skipped): files
// are opened non-blocking, and one that is no longer a regular file when
// it is opened (a FIFO or a device took its place) is closed unread and
// counted as skipped too. Files that cannot be read or vanish
// during the walk are counted as openfailed and listed in the errors (up
// to maxerrors). Files of /proc and /sys that report a size of 0 are read
// to their end all the same. Lines are split on '\n' (a '\r' before it is
// dropped); lines of any length are matched whole up to MaxLineSize, longer
// ones in pieces of MaxLineSize bytes.
//
// # Results
//
// Elements map each label to its matches (see Elements), sorted by file;
// a matchany search's matches list the filters that matched (Checks).
// File names that are not valid UTF-8 come back with each invalid byte
// replaced by U+FFFD, as JSON requires. Statistics are a Statistics.
// FoundAnything is true when any search matched a file. Success is false
// only when the walk was interrupted (its context ended), in which case
// the results found so far are returned.
package file

import (
	"errors"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "file"

// Defaults of a search's options.
const (
	DefaultMaxDepth   = 1000
	DefaultMatchLimit = 1000
	DefaultMaxErrors  = 30
)

// MaxLineSize is the longest line matched as one piece against content
// regexes.
const MaxLineSize = 16 << 20

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid file parameters")

func init() { module.Register(fileModule{}) }

// fileModule implements module.Module.
type fileModule struct{}

func (fileModule) Name() string { return Name }

func (fileModule) Summary() string {
	return "find files by name, content and hash; return their names and metadata"
}

func (fileModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}
