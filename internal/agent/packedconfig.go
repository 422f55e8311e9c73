package agent

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/packed"
	"github.com/migplatform/mig/internal/secfile"
	"github.com/migplatform/mig/internal/sign"
)

// DefaultOverridable are the keys a file configuration, an environment
// variable or a flag may change in a repacked agent unless its payload says
// otherwise. They tune how the agent runs on one host and cannot widen what
// it obeys. Every other key (server, ca, cadata, keyring, keyringdata, acl,
// acldata, enrollmenttoken, maxvalidity, moduleexe, mode) is locked unless
// the payload lists it in "overridable": they decide whom the agent talks to
// and whose signatures it obeys, and the point of shipping one file is that a
// stray /etc/mig/agent.json or MIG_AGENT_SERVER cannot change that.
var DefaultOverridable = []string{"heartbeat", "moduletimeout", "maxprocs", "name", "tags", "statedir"}

// packedPathKeys are configuration keys naming files; a payload carries
// their content inline instead, under the key with this value.
var packedPathKeys = map[string]string{"keyring": "keyringdata", "acl": "acldata", "ca": "cadata"}

// Packed is the configuration a repacked agent carries appended to its
// executable (internal/packed): a JSON object with the configuration file's
// keys (the keyring, ACL and CA inline, as keyringdata, acldata and cadata)
// and "overridable", the keys other sources may still change besides
// DefaultOverridable.
type Packed struct {
	// Source names where the payload was read from.
	Source string
	// Config is DefaultConfig overridden by the payload.
	Config Config
	// Keys are the configuration keys the payload sets, sorted.
	Keys []string
	// Overridable are the keys other sources may change, sorted.
	Overridable []string
	// data is the payload as read.
	data []byte
}

// ParsePacked parses a payload read from source. Unknown or duplicate keys,
// values of the wrong type and keys naming files are errors naming source.
func ParsePacked(source string, data []byte) (*Packed, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: appended configuration of %s: %s", ErrConfig, source, fmt.Sprintf(format, args...))
	}
	fields, err := objectFields(data)
	if err != nil {
		return nil, bad("%v", err)
	}
	p := &Packed{Source: source, data: data}
	over := slices.Clone(DefaultOverridable)
	rest := map[string]json.RawMessage{}
	for _, f := range fields {
		if inline, ok := packedPathKeys[f.key]; ok {
			return nil, bad("key %q names a file; a repacked agent carries it inline as %q", f.key, inline)
		}
		if f.key != "overridable" {
			rest[f.key] = f.raw
			p.Keys = append(p.Keys, f.key)
			continue
		}
		var list []string
		if err := json.Unmarshal(f.raw, &list); err != nil {
			return nil, bad("key \"overridable\": want an array of configuration keys, got %s", shorten(f.raw))
		}
		for _, k := range list {
			if !slices.Contains(configKeys, k) {
				return nil, bad("key \"overridable\": unknown configuration key %q", k)
			}
			if !slices.Contains(over, k) {
				over = append(over, k)
			}
		}
	}
	obj, err := json.Marshal(rest)
	if err != nil {
		return nil, bad("%v", err)
	}
	p.Config = DefaultConfig()
	if err := p.Config.applyJSON("appended configuration of "+source, obj); err != nil {
		return nil, err
	}
	sort.Strings(p.Keys)
	sort.Strings(over)
	p.Overridable = over
	return p, nil
}

// ReadPacked returns the configuration appended to the executable at path,
// or nil with a nil error if it carries none. A payload that is corrupt, was
// modified after repacking or does not parse is an error naming the file, as
// is a binary that also has a compiled-in configuration (one of the two
// would be silently ignored).
func ReadPacked(path string) (*Packed, error) {
	data, found, err := packed.Read(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if !found {
		return nil, nil
	}
	if builtinConfig != "" || builtinKeyring != "" || builtinACL != "" {
		return nil, fmt.Errorf("%w: %s has both a compiled-in configuration (-ldflags -X) and an appended one (mig-agent repack); repack a binary built without -X configuration", ErrConfig, path)
	}
	return ParsePacked(path, data)
}

// allow refuses the keys p locks.
func (p *Packed) allow(key string) error {
	if slices.Contains(p.Overridable, key) {
		return nil
	}
	return fmt.Errorf("key %q is locked by the configuration appended to %s (overridable: %s)", key, p.Source, strings.Join(p.Overridable, ", "))
}

// Redacted returns the payload as indented JSON with the enrollment token
// replaced by "(redacted)".
func (p *Packed) Redacted() []byte {
	var m map[string]any
	if err := json.Unmarshal(p.data, &m); err != nil {
		return nil
	}
	if _, ok := m["enrollmenttoken"]; ok {
		m["enrollmenttoken"] = "(redacted)"
	}
	out, _ := json.MarshalIndent(m, "", "  ")
	return out
}

// LoadPackedConfig is LoadConfig for a repacked agent: p's configuration is
// the default, then the JSON file at path (if not empty) and the MIG_AGENT_*
// variables override it, each refused with an error naming the key if it
// sets a key p locks.
func LoadPackedConfig(p *Packed, path string) (Config, error) {
	return loadConfigOver(p.Config, p.allow, path, os.Getenv)
}

// SetFlagsPacked is SetFlags whose apply, given a non-nil Packed, refuses
// the flags that set a key it locks.
func SetFlagsPacked(fs *flag.FlagSet) (apply func(*Config, *Packed) error) {
	a := setFlags(fs)
	return func(c *Config, p *Packed) error {
		if p == nil {
			return a(c, nil)
		}
		return a(c, p.allow)
	}
}

// MaterializeCA writes an inline CA (cadata) to <statedir>/ca.pem (0600, in
// a state directory made 0700) and points CA at it, where the agent reads
// it. It does nothing when CAData is empty.
func (c *Config) MaterializeCA() error {
	if c.CAData == "" {
		return nil
	}
	if c.CA != "" {
		return fmt.Errorf("%w: ca %q and cadata are both set; set one", ErrConfig, c.CA)
	}
	if c.StateDir == "" {
		return fmt.Errorf("%w: statedir is not set", ErrConfig)
	}
	if _, err := secfile.PrivateDir(c.StateDir); err != nil {
		return fmt.Errorf("%w: statedir: %v", ErrConfig, err)
	}
	p := filepath.Join(c.StateDir, "ca.pem")
	if err := atomicfile.Write(p, []byte(c.CAData), 0o600); err != nil {
		return fmt.Errorf("%w: write cadata to %s: %v", ErrConfig, p, err)
	}
	c.CA, c.CAData = p, ""
	return nil
}

// PackConfig reads the agent configuration file at path and returns the
// payload "mig-agent repack" appends: the same keys, with the files that
// keyring, acl and ca name read in and carried inline (keyringdata, acldata,
// cadata). The file may also hold "overridable" (see Packed). The keyring,
// the ACL and the CA are checked, so that a bad one is refused here rather
// than on every host.
func PackConfig(path string) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, path, fmt.Sprintf(format, args...))
	}
	data, err := readFileLimited(path, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	fields, err := objectFields(data)
	if err != nil {
		return nil, bad("%v", err)
	}
	out := map[string]json.RawMessage{}
	for _, f := range fields {
		if f.key != "overridable" && !slices.Contains(configKeys, f.key) {
			return nil, bad("unknown key %q", f.key)
		}
		inline, isPath := packedPathKeys[f.key]
		if !isPath {
			out[f.key] = f.raw
			continue
		}
		var name string
		if err := json.Unmarshal(f.raw, &name); err != nil || name == "" {
			return nil, bad("key %q: want a file name, got %s", f.key, shorten(f.raw))
		}
		b, err := readFileLimited(name, MaxConfigSize)
		if err != nil {
			return nil, bad("key %q: %v", f.key, err)
		}
		switch f.key {
		case "keyring":
			if _, err := sign.ReadKeyring(bytes.NewReader(b)); err != nil {
				return nil, bad("keyring %s: %v", name, err)
			}
		case "acl":
			if _, err := acl.Parse(b); err != nil {
				return nil, bad("acl %s: %v", name, err)
			}
		case "ca":
			if !x509.NewCertPool().AppendCertsFromPEM(b) {
				return nil, bad("ca %s holds no PEM certificate", name)
			}
		}
		if _, dup := out[inline]; dup {
			return nil, bad("keys %q and %q are both set; set one", f.key, inline)
		}
		if f.key == "acl" {
			var compact bytes.Buffer
			if err := json.Compact(&compact, b); err != nil {
				return nil, bad("acl %s: %v", name, err)
			}
			b = compact.Bytes()
			out[inline] = json.RawMessage(b)
			continue
		}
		s, _ := json.Marshal(string(b))
		out[inline] = s
	}
	payload, err := json.Marshal(out)
	if err != nil {
		return nil, bad("%v", err)
	}
	if _, err := ParsePacked(path, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// field is one key of a JSON object, in order.
type field struct {
	key string
	raw json.RawMessage
}

// objectFields splits data, a JSON object, into its fields, refusing
// anything else, duplicate keys and data after the object.
func objectFields(data []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var fields []field
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("key %q: %v", key, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		fields = append(fields, field{key, raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return fields, nil
}
