package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/secfile"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/strictjson"
)

// ConfigEnv is the environment variable naming the configuration file when
// no path is given explicitly.
const ConfigEnv = "MIG_CONFIG"

// DefaultConfigName is the configuration file looked for in the user's home
// directory when neither a path nor ConfigEnv is given.
const DefaultConfigName = ".migrc"

// APIKeyEnv is the environment variable holding an API key; when set, it
// replaces the configuration's "apikey".
const APIKeyEnv = "MIG_API_KEY"

// MaxConfigSize bounds the size of a configuration file.
const MaxConfigSize = 1 << 20

// ErrConfig is wrapped by every error about a bad or missing configuration.
var ErrConfig = errors.New("bad client configuration")

// Config is the investigator's client configuration, read from a JSON file:
//
//	{"api": {"url": "https://127.0.0.1:12664/api/v1", "ca": "/path/ca.pem"},
//	 "signer": {"keyfile": "/path/investigator.asc", "passphrase": ""},
//	 "targets": {"default": "status='online'",
//	             "macros": {"linux": "environment->>'os'='linux'"}}}
//
// The signer is either an armored private key file ("keyfile", "passphrase")
// or a key held by GnuPG ("gpg", "gpghome", "keyid").
//
// "apikey" (or $MIG_API_KEY), when set, authenticates every request with
// that API key ("mig_<keyid>_<secret>") instead of tokens signed by the
// signer; the signer is then needed only to sign actions, and may be left
// out by automation that only reads.
type Config struct {
	API     APIConfig     `json:"api"`
	Signer  SignerConfig  `json:"signer"`
	Targets TargetsConfig `json:"targets"`
	APIKey  string        `json:"apikey,omitempty"`

	// Path is the file the configuration was read from, if any.
	Path string `json:"-"`
	// Logger receives the client's debug logs; nil discards them.
	Logger *slog.Logger `json:"-"`
	// KeySigner, when set, signs tokens and actions instead of the signer
	// the Signer section describes.
	KeySigner sign.Signer `json:"-"`
}

// APIConfig says where the MIG API is and how to trust it.
type APIConfig struct {
	// URL is the API's base URL, ending in /api/v1. It must be https,
	// except on a loopback address.
	URL string `json:"url"`
	// CA is a PEM file with the certificate authorities that sign the API's
	// certificate; empty means the system's roots.
	CA string `json:"ca,omitempty"`
}

// SignerConfig says which OpenPGP key signs the investigator's tokens and
// actions: an armored private key file, or a key in a GnuPG home.
type SignerConfig struct {
	KeyFile    string `json:"keyfile,omitempty"`
	Passphrase string `json:"passphrase,omitempty"`
	GPG        string `json:"gpg,omitempty"`     // path to gpg; empty: "gpg" from $PATH
	GPGHome    string `json:"gpghome,omitempty"` // empty: gpg's default
	KeyID      string `json:"keyid,omitempty"`
}

// TargetsConfig holds the default target and named target macros.
type TargetsConfig struct {
	// Default is used when the command line gives no target.
	Default string `json:"default,omitempty"`
	// Macros maps short names, usable as -t NAME, to targets.
	Macros map[string]string `json:"macros,omitempty"`
}

// ConfigPath returns the configuration file to read: path if not empty,
// else $MIG_CONFIG, else ~/.migrc.
func ConfigPath(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p := os.Getenv(ConfigEnv); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%w: no config file given and no home directory: %w", ErrConfig, err)
	}
	return filepath.Join(home, DefaultConfigName), nil
}

// LoadConfig reads and validates a configuration file. An empty path means
// ConfigPath's default. Unknown keys are errors; every error names the file.
// Relative paths in the file (ca, keyfile, gpghome) are relative to the
// file's directory, and a leading ~/ is the user's home directory.
func LoadConfig(path string) (Config, error) {
	path, err := ConfigPath(path)
	if err != nil {
		return Config{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	if len(data) > MaxConfigSize {
		return Config{}, fmt.Errorf("%w: %s: larger than %d bytes", ErrConfig, path, MaxConfigSize)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkConfigFile(path, cfg); err != nil {
		return Config{}, err
	}
	cfg.Path = path
	if k := os.Getenv(APIKeyEnv); k != "" {
		if _, _, err := action.ParseAPIKey(k); err != nil {
			return Config{}, fmt.Errorf("%w: $%s: %w", ErrConfig, APIKeyEnv, err)
		}
		cfg.APIKey = k
	}
	dir := filepath.Dir(path)
	cfg.API.CA = resolvePath(dir, cfg.API.CA)
	cfg.Signer.KeyFile = resolvePath(dir, cfg.Signer.KeyFile)
	cfg.Signer.GPGHome = resolvePath(dir, cfg.Signer.GPGHome)
	return cfg, nil
}

// checkConfigFile refuses a configuration file that other users may write
// (they could point mig at another server), or read when it holds a secret
// (an API key, a key's passphrase).
func checkConfigFile(path string, cfg Config) error {
	var secrets []string
	if cfg.APIKey != "" {
		secrets = append(secrets, "apikey")
	}
	if cfg.Signer.Passphrase != "" {
		secrets = append(secrets, "signer.passphrase")
	}
	r := secfile.Rule{What: "client configuration", Kind: secfile.Public}
	if len(secrets) > 0 {
		r = secfile.Rule{What: "client configuration (it holds " + strings.Join(secrets, ", ") + ")", Kind: secfile.Secret,
			Otherwise: "change those secrets (revoke the API key: mig apikey revoke)"}
	}
	if err := secfile.Check(path, r); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// UserDirName is the directory in the user's home where mig keeps its
// state: the audit heads it verified, the agent keys it pinned.
const UserDirName = ".mig"

// UserDir returns ~/.mig, made 0700 if it is missing. It refuses one that
// another user owns, and makes one that group or others could reach 0700,
// returning the mode it had then (0 otherwise) for the caller to warn about.
// Everything mig writes in it is 0600.
func UserDir() (dir string, was fs.FileMode, err error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", 0, fmt.Errorf("no home directory for ~/%s: %w", UserDirName, err)
	}
	dir = filepath.Join(home, UserDirName)
	was, err = secfile.PrivateDir(dir)
	return dir, was, err
}

// ParseConfig decodes and validates a configuration, refusing unknown keys
// and trailing data. Errors wrap ErrConfig and give the line and column of
// malformed JSON.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := strictjson.Decode(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, describeJSONError(data, err))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks a configuration: an API URL that is https (or http on a
// loopback address), at most one kind of signer, and non-empty macros.
func (c *Config) Validate() error {
	if c.API.URL == "" {
		return fmt.Errorf("%w: api.url is empty", ErrConfig)
	}
	if _, err := parseAPIURL(c.API.URL); err != nil {
		return err
	}
	if c.APIKey != "" {
		if _, _, err := action.ParseAPIKey(c.APIKey); err != nil {
			return fmt.Errorf("%w: apikey: %w", ErrConfig, err)
		}
	}
	s := c.Signer
	if s.KeyFile != "" && (s.KeyID != "" || s.GPG != "" || s.GPGHome != "") {
		return fmt.Errorf("%w: signer has both keyfile %q and gpg settings; choose one", ErrConfig, s.KeyFile)
	}
	if s.KeyID == "" && (s.GPG != "" || s.GPGHome != "") {
		return fmt.Errorf("%w: signer.gpg is set but signer.keyid is empty", ErrConfig)
	}
	if s.Passphrase != "" && s.KeyFile == "" {
		return fmt.Errorf("%w: signer.passphrase is set without signer.keyfile", ErrConfig)
	}
	for name, t := range c.Targets.Macros {
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("%w: targets.macros has an empty name", ErrConfig)
		}
		if name == "all" || name == "local" {
			return fmt.Errorf("%w: targets.macros name %q is reserved", ErrConfig, name)
		}
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%w: targets.macros[%q] is empty", ErrConfig, name)
		}
	}
	return nil
}

// parseAPIURL checks and normalises the API base URL.
func parseAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: api.url %q: %w", ErrConfig, raw, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: api.url %q is plain http to a host that is not loopback; use https", ErrConfig, raw)
		}
	default:
		return nil, fmt.Errorf("%w: api.url %q: scheme must be https", ErrConfig, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: api.url %q has no host", ErrConfig, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: api.url %q must not carry credentials, a query or a fragment", ErrConfig, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// resolvePath expands a leading ~/ and makes a relative path relative to dir.
func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p[1:], "/"))
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// describeJSONError adds the line and column of a JSON syntax or type error.
func describeJSONError(data []byte, err error) string {
	if line, col, ok := JSONErrorPos(data, err); ok {
		return fmt.Sprintf("line %d, column %d: %v", line, col, err)
	}
	return err.Error()
}

// JSONErrorPos returns the line and column in data where a JSON decoding
// error happened, when the error says.
func JSONErrorPos(data []byte, err error) (line, col int, ok bool) {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
		if off > 0 && !strings.Contains(se.Error(), "unexpected end") {
			off-- // Offset counts the offending byte
		}
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(data))
	}
	if off < 0 {
		return 0, 0, false
	}
	line, col = LineCol(data, off)
	return line, col, true
}

// LineCol converts a byte offset in data to a 1-based line and column.
func LineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	line, col = 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
