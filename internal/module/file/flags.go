package file

import (
	"encoding/json"
	"flag"

	"github.com/migplatform/mig/internal/module"
)

// FlagLabel is the label of the search that the flags of "mig file" build.
const FlagLabel = "s1"

// SetFlags registers MIG's flags of "mig file" on fs. They build one search
// labelled FlagLabel; the returned function builds its JSON parameters and
// parses them as ParseParameters does (see module.BuildFunc).
func (m fileModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var (
		s                             Search
		maxDepth, matchLimit, maxErrs int
		matchAll, matchAny            bool
	)
	module.StringsVar(fs, &s.Paths, "path", "search under this absolute `path` (repeatable)")
	module.StringsVar(fs, &s.Names, "name", "`regex` on file names, '!' in front negates (repeatable)")
	module.StringsVar(fs, &s.Sizes, "size", "file `size`: N, <N or >N bytes, with k, m, g or t to multiply by 1024^1..4 (repeatable)")
	module.StringsVar(fs, &s.Modes, "mode", "`regex` on the mode string, as -rwxr-xr-x (repeatable)")
	module.StringsVar(fs, &s.Mtimes, "mtime", "modified within (<N) or before (>N) the last N d, h or m, as <90d (repeatable)")
	module.StringsVar(fs, &s.Contents, "content", "`regex` on lines of files, '!' in front negates (repeatable)")
	module.StringsVar(fs, &s.MD5, "md5", "MD5 `hash` of files (repeatable)")
	module.StringsVar(fs, &s.SHA1, "sha1", "SHA-1 `hash` of files (repeatable)")
	module.StringsVar(fs, &s.SHA2, "sha2", "SHA-256, SHA-384 or SHA-512 `hash` of files (repeatable)")
	module.StringsVar(fs, &s.SHA256, "sha256", "SHA-256 `hash` of files, 64 digits (repeatable; with -sha2 -sha384 -sha512, one filter)")
	module.StringsVar(fs, &s.SHA384, "sha384", "SHA-384 `hash` of files, 96 digits (repeatable)")
	module.StringsVar(fs, &s.SHA512, "sha512", "SHA-512 `hash` of files, 128 digits (repeatable)")
	module.StringsVar(fs, &s.SHA3, "sha3", "SHA3-224, SHA3-256, SHA3-384 or SHA3-512 `hash` of files (repeatable)")
	module.StringsVar(fs, &s.Options.Mismatch, "mismatch", "invert the filters of this `kind`: name, size, mode, mtime, content, md5, sha1, sha2, sha3 (repeatable)")
	fs.IntVar(&maxDepth, "maxdepth", DefaultMaxDepth, "how deep to look under each path")
	fs.BoolVar(&matchAll, "matchall", true, "a file must match every filter")
	fs.BoolVar(&matchAny, "matchany", false, "a file must match any one filter")
	fs.BoolVar(&s.Options.Macroal, "macroal", false, "every line must match each content regex")
	fs.BoolVar(&s.Options.ReturnSHA256, "returnsha256", false, "return the SHA-256 of files found")
	fs.BoolVar(&s.Options.Decompress, "decompress", false, "read gzip files through gunzip for contents and hashes")
	fs.IntVar(&matchLimit, "matchlimit", DefaultMatchLimit, "return at most this many files")
	fs.IntVar(&maxErrs, "maxerrors", DefaultMaxErrors, "return at most this many errors")
	return func() (json.RawMessage, module.Runner, error) {
		// The options that have an agent-side default are sent only when
		// given, as MIG does.
		s.Options.MaxDepth = module.Optional(fs, "maxdepth", &maxDepth)
		s.Options.MatchAll = module.Optional(fs, "matchall", &matchAll)
		s.Options.MatchAny = module.Optional(fs, "matchany", &matchAny)
		s.Options.MatchLimit = module.Optional(fs, "matchlimit", &matchLimit)
		s.Options.MaxErrors = module.Optional(fs, "maxerrors", &maxErrs)
		return module.Build(m, Parameters{Searches: map[string]Search{FlagLabel: s}})
	}
}
