package file

import (
	"encoding/json"
	"flag"
	"strings"
)

// FlagLabel is the label of the search that the flags of "mig file" build.
const FlagLabel = "s1"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ", ")
}

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// SetFlags registers MIG's flags of "mig file" on fs. They build one search
// labelled FlagLabel; the returned function builds its JSON parameters and
// validates them as ParseParameters does.
func (fileModule) SetFlags(fs *flag.FlagSet) func() (json.RawMessage, error) {
	var (
		s                                  Search
		md5s, sha1s, sha2s, sha3s          stringList
		sha256s, sha384s, sha512s          stringList
		paths, names, sizes, modes, mtimes stringList
		contents, mismatch                 stringList
		maxDepth, matchLimit, maxErrs      int
		matchAll, matchAny, macroal        bool
		returnHash, decompress             bool
	)
	fs.Var(&paths, "path", "search under this absolute `path` (repeatable)")
	fs.Var(&names, "name", "`regex` on file names, '!' in front negates (repeatable)")
	fs.Var(&sizes, "size", "file `size`: N, <N or >N bytes, with k, m, g or t to multiply by 1024^1..4 (repeatable)")
	fs.Var(&modes, "mode", "`regex` on the mode string, as -rwxr-xr-x (repeatable)")
	fs.Var(&mtimes, "mtime", "modified within (<N) or before (>N) the last N d, h or m, as <90d (repeatable)")
	fs.Var(&contents, "content", "`regex` on lines of files, '!' in front negates (repeatable)")
	fs.Var(&md5s, "md5", "MD5 `hash` of files (repeatable)")
	fs.Var(&sha1s, "sha1", "SHA-1 `hash` of files (repeatable)")
	fs.Var(&sha2s, "sha2", "SHA-256, SHA-384 or SHA-512 `hash` of files (repeatable)")
	fs.Var(&sha256s, "sha256", "SHA-256 `hash` of files, 64 digits (repeatable; with -sha2 -sha384 -sha512, one filter)")
	fs.Var(&sha384s, "sha384", "SHA-384 `hash` of files, 96 digits (repeatable)")
	fs.Var(&sha512s, "sha512", "SHA-512 `hash` of files, 128 digits (repeatable)")
	fs.Var(&sha3s, "sha3", "SHA3-224, SHA3-256, SHA3-384 or SHA3-512 `hash` of files (repeatable)")
	fs.Var(&mismatch, "mismatch", "invert the filters of this `kind`: name, size, mode, mtime, content, md5, sha1, sha2, sha3 (repeatable)")
	fs.IntVar(&maxDepth, "maxdepth", DefaultMaxDepth, "how deep to look under each path")
	fs.BoolVar(&matchAll, "matchall", true, "a file must match every filter")
	fs.BoolVar(&matchAny, "matchany", false, "a file must match any one filter")
	fs.BoolVar(&macroal, "macroal", false, "every line must match each content regex")
	fs.BoolVar(&returnHash, "returnsha256", false, "return the SHA-256 of files found")
	fs.BoolVar(&decompress, "decompress", false, "read gzip files through gunzip for contents and hashes")
	fs.IntVar(&matchLimit, "matchlimit", DefaultMatchLimit, "return at most this many files")
	fs.IntVar(&maxErrs, "maxerrors", DefaultMaxErrors, "return at most this many errors")
	return func() (json.RawMessage, error) {
		s.Paths, s.Names, s.Sizes, s.Modes, s.Mtimes, s.Contents = paths, names, sizes, modes, mtimes, contents
		s.MD5, s.SHA1, s.SHA2, s.SHA3 = md5s, sha1s, sha2s, sha3s
		s.SHA256, s.SHA384, s.SHA512 = sha256s, sha384s, sha512s
		s.Options.Mismatch = mismatch
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "maxdepth":
				s.Options.MaxDepth = &maxDepth
			case "matchall":
				s.Options.MatchAll = &matchAll
			case "matchany":
				s.Options.MatchAny = &matchAny
			case "matchlimit":
				s.Options.MatchLimit = &matchLimit
			case "maxerrors":
				s.Options.MaxErrors = &maxErrs
			case "returnsha256":
				s.Options.ReturnSHA256 = returnHash
			case "macroal":
				s.Options.Macroal = macroal
			case "decompress":
				s.Options.Decompress = decompress
			}
		})
		raw, err := json.Marshal(Parameters{Searches: map[string]Search{FlagLabel: s}})
		if err != nil {
			return nil, err
		}
		if _, err := ParseParameters(raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
}
