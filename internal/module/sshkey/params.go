package sshkey

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Parameters are the sshkey module's JSON parameters.
type Parameters struct {
	// Paths are absolute paths to search; empty means DefaultPaths.
	Paths []string `json:"paths,omitempty"`
	// MaxDepth bounds how deep under each path (DefaultMaxDepth when 0).
	MaxDepth int `json:"maxdepth,omitempty"`
}

// Runner runs the sshkey module with parsed parameters.
type Runner struct {
	paths    []string
	maxDepth int
}

// ParseParameters decodes and validates the module's parameters, refusing
// unknown fields. Errors wrap ErrInvalidParameters and name the bad value.
func ParseParameters(raw []byte) (*Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	return p.compile()
}

func (p Parameters) compile() (*Runner, error) {
	r := &Runner{paths: p.Paths, maxDepth: p.MaxDepth}
	if len(r.paths) == 0 {
		r.paths = DefaultPaths()
	}
	if len(r.paths) > MaxPaths {
		return nil, fmt.Errorf("%w: %d paths, at most %d", ErrInvalidParameters, len(r.paths), MaxPaths)
	}
	for _, path := range r.paths {
		if !isAbs(path) || strings.ContainsRune(path, 0) || len(path) > 4096 {
			return nil, fmt.Errorf("%w: path %q is not an absolute path", ErrInvalidParameters, path)
		}
	}
	if r.maxDepth < 0 || r.maxDepth > MaxMaxDepth {
		return nil, fmt.Errorf("%w: maxdepth %d must be 0 to %d", ErrInvalidParameters, r.maxDepth, MaxMaxDepth)
	}
	if r.maxDepth == 0 {
		r.maxDepth = DefaultMaxDepth
	}
	return r, nil
}

// isAbs accepts absolute paths of any of the agent's platforms, since the
// investigator's machine may not be the endpoint's platform.
func isAbs(p string) bool {
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return true
	}
	// C:\ or C:/ drive paths, and \\server\share paths.
	if len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		(p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z') {
		return true
	}
	return strings.HasPrefix(p, `\\`)
}

// SetFlags registers MIG's flags of "mig sshkey": -path (repeatable) and
// -maxdepth. The returned function builds the JSON parameters and parses
// them as ParseParameters does (see module.BuildFunc).
func (m sshkeyModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var p Parameters
	module.StringsVar(fs, &p.Paths, "path", "absolute `path` to search (repeatable; default home directories and /etc/ssh)")
	fs.IntVar(&p.MaxDepth, "maxdepth", 0, fmt.Sprintf("how deep under each path (default %d)", DefaultMaxDepth))
	return func() (json.RawMessage, module.Runner, error) {
		return module.Build(m, p)
	}
}

// PrintResult writes one line per key found:
//
//	<agent> <path> [kind:<kind>, type:<type>, bits:<n>, sha256:<SHA256:...>, md5:<MD5:...>, encrypted:<bool>] <comment>
//
// It prints nothing when nothing was found.
func (sshkeyModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("sshkey module elements: %w", err)
	}
	for _, k := range el.Keys {
		sha, md := k.SHA256, k.MD5
		if sha == "" {
			sha, md = "unknown", "unknown"
		}
		line := fmt.Sprintf("%s %s [kind:%s, type:%s, bits:%d, sha256:%s, md5:%s, encrypted:%v]",
			agentName, k.Path, k.Kind, k.Type, k.Bits, sha, md, k.Encrypted)
		if k.Comment != "" {
			line += " " + k.Comment
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
