// Package agentkeys keeps the agent keys an investigator's machine trusts:
// for each agent name, the Ed25519 public key whose signatures its results
// must carry (action.VerifyResult). The mig command line pins a key the
// first time it sees an agent's name (trust on first use, as ssh does with
// host keys) or reads pins from a file an operator distributes, and says
// loudly when an agent's key is not its pin.
//
// The file, ~/.mig/agentkeys by default, holds one pin a line:
//
//	# comment
//	web01 3f9c0a4e5b1d2c7f8a6e4d3c2b1a0f9e VmM5...base64...=
//	"name with spaces" <agent id> <key>
//
// the agent's name (quoted as a Go string when it holds spaces, quotes,
// '#' or characters that do not print), its agent ID (action.AgentID of
// the key, checked when read) and its public key in standard base64.
// Blank lines and lines starting with '#' are ignored. A name appears once.
package agentkeys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/atomicfile"

	"github.com/migplatform/mig/internal/secfile"
)

// PathEnv names the environment variable that names the pin file instead
// of ~/.mig/agentkeys (FileName).
const PathEnv = "MIG_AGENTKEYS"

// MaxFileSize bounds a pin file.
const MaxFileSize = 64 << 20

// ErrSyntax is wrapped by every error reading a pin file.
var ErrSyntax = errors.New("bad agent key file")

// Status is how an agent's key compares with the pins.
type Status int

// Statuses of Check.
const (
	// Unpinned: no key is pinned for the name.
	Unpinned Status = iota
	// Match: the key is the name's pin.
	Match
	// Changed: another key is pinned for the name.
	Changed
)

// Set is a set of pins by agent name. The zero Set is empty and usable.
type Set struct {
	pins map[string]ed25519.PublicKey
}

// FileName is the pin file's name in the investigator's ~/.mig.
const FileName = "agentkeys"

// Load reads the pin file at path; a missing file is an empty set. A file,
// or its directory, that other users may write is refused (secfile): pins
// are public keys, but whoever can change them can make a forged result
// verify.
func Load(path string) (*Set, error) {
	if err := secfile.Check(path, secfile.Rule{What: "agent key pins", Kind: secfile.Public}); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Set{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent keys: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("agent keys %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("agent keys %s: %w: over %d bytes", path, ErrSyntax, MaxFileSize)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("agent keys %s: %w", path, err)
	}
	return s, nil
}

// Parse reads pins in the file format of the package doc. Errors wrap
// ErrSyntax and name the line.
func Parse(data []byte) (*Set, error) {
	s := &Set{pins: map[string]ed25519.PublicKey{}}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8 text", ErrSyntax)
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, rest, err := cutName(trimmed)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, n, err)
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: line %d: want a name, an agent id and a key, got %d fields after the name",
				ErrSyntax, n, len(fields))
		}
		key, err := base64.StdEncoding.Strict().DecodeString(fields[1])
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: line %d: key of %q is not a base64 Ed25519 public key", ErrSyntax, n, name)
		}
		if id := action.AgentID(key); id != fields[0] {
			return nil, fmt.Errorf("%w: line %d: agent id of %q is %.40q, but its key is that of agent %s",
				ErrSyntax, n, name, fields[0], id)
		}
		if _, dup := s.pins[name]; dup {
			return nil, fmt.Errorf("%w: line %d: agent %q is pinned twice", ErrSyntax, n, name)
		}
		s.pins[name] = key
	}
	return s, nil
}

// cutName splits a line into its name and the rest.
func cutName(line string) (name, rest string, err error) {
	if strings.HasPrefix(line, `"`) {
		q, err := strconv.QuotedPrefix(line)
		if err != nil {
			return "", "", fmt.Errorf("bad quoted name: %v", err)
		}
		name, err = strconv.Unquote(q)
		if err != nil {
			return "", "", fmt.Errorf("bad quoted name: %v", err)
		}
		rest = line[len(q):]
		if rest != "" && !unicode.IsSpace(rune(rest[0])) {
			return "", "", errors.New("no space after the quoted name")
		}
	} else {
		name = line
		if i := strings.IndexFunc(line, unicode.IsSpace); i >= 0 {
			name, rest = line[:i], line[i:]
		}
	}
	if name == "" {
		return "", "", errors.New("empty agent name")
	}
	if len(name) > action.MaxNameLen || !utf8.ValidString(name) {
		return "", "", fmt.Errorf("agent name is longer than %d bytes or not UTF-8", action.MaxNameLen)
	}
	return name, rest, nil
}

// Check compares key with the pin of name.
func (s *Set) Check(name string, key ed25519.PublicKey) Status {
	pin, ok := s.pins[name]
	switch {
	case !ok:
		return Unpinned
	case pin.Equal(key):
		return Match
	}
	return Changed
}

// Get returns the key pinned for name.
func (s *Set) Get(name string) (ed25519.PublicKey, bool) {
	k, ok := s.pins[name]
	return k, ok
}

// Pin pins key for name, replacing any other pin of the name.
func (s *Set) Pin(name string, key ed25519.PublicKey) error {
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("agent keys: the key of %q is %d bytes, not an Ed25519 public key", name, len(key))
	}
	if name == "" || len(name) > action.MaxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("agent keys: agent name %.80q is empty, too long or not UTF-8", name)
	}
	if s.pins == nil {
		s.pins = map[string]ed25519.PublicKey{}
	}
	s.pins[name] = slices.Clone(key)
	return nil
}

// Forget removes the pin of name and reports whether there was one.
func (s *Set) Forget(name string) bool {
	_, ok := s.pins[name]
	delete(s.pins, name)
	return ok
}

// Len returns the number of pins.
func (s *Set) Len() int { return len(s.pins) }

// Names returns the pinned names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.pins))
	for n := range s.pins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Marshal returns the set in the file format, sorted by name; Parse reads
// it back to the same set.
func (s *Set) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# mig agent keys: name, agent id, Ed25519 public key (base64)\n")
	for _, n := range s.Names() {
		key := s.pins[n]
		fmt.Fprintf(&b, "%s %s %s\n", quoteName(n), action.AgentID(key), base64.StdEncoding.EncodeToString(key))
	}
	return b.Bytes()
}

// quoteName writes a name as the file format reads it.
func quoteName(n string) string {
	if strings.HasPrefix(n, `"`) || strings.HasPrefix(n, "#") ||
		strings.IndexFunc(n, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(n)
	}
	return n
}

// Save writes the set to path, 0600, making its directory 0700 if it does
// not exist.
func (s *Set) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("agent keys: %w", err)
	}
	if err := atomicfile.Write(path, s.Marshal(), 0o600); err != nil {
		return fmt.Errorf("agent keys: %w", err)
	}
	return nil
}

// String returns the status as mig prints it.
func (st Status) String() string {
	switch st {
	case Match:
		return "pinned"
	case Changed:
		return "KEY CHANGED"
	}
	return "unpinned"
}
