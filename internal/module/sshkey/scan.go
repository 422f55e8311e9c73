package sshkey

import (
	"bytes"
	"context"
	"crypto/dsa" //nolint:staticcheck // DSA keys still exist on endpoints and must be reported.
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Key kinds.
const (
	KindPrivate        = "private"
	KindPublic         = "public"
	KindAuthorizedKeys = "authorized_keys"
)

// Key is one key found.
type Key struct {
	// Path is the file holding the key.
	Path string `json:"path"`
	// Kind is KindPrivate, KindPublic or KindAuthorizedKeys.
	Kind string `json:"kind"`
	// Type is the key type as ssh-keygen -l prints it: RSA, DSA, ECDSA,
	// ED25519, ECDSA-SK, ED25519-SK; empty when unknown (an encrypted key
	// without its public half).
	Type string `json:"type,omitempty"`
	// Bits is the key size as ssh-keygen -l prints it.
	Bits int `json:"bits,omitempty"`
	// SHA256 and MD5 are the fingerprints as ssh-keygen -l -E sha256|md5
	// prints them ("SHA256:...", "MD5:aa:bb:...").
	SHA256 string `json:"sha256,omitempty"`
	MD5    string `json:"md5,omitempty"`
	// Comment is the key's comment, printable characters only.
	Comment string `json:"comment,omitempty"`
	// Encrypted is true for a private key protected by a passphrase.
	Encrypted bool `json:"encrypted"`
}

// Elements are the keys found, sorted by path.
type Elements struct {
	Keys []Key `json:"keys"`
}

// Statistics count what the module read.
type Statistics struct {
	FilesRead  int  `json:"filesread"`
	OpenFailed int  `json:"openfailed"`
	KeysFound  int  `json:"keysfound"`
	Truncated  bool `json:"truncated,omitempty"`
}

// Run walks the paths and returns the keys found.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	var (
		keys  []Key
		stats Statistics
		errs  []string
		seen  = map[string]bool{}
	)
	addErr := func(err error) {
		stats.OpenFailed++
		if len(errs) < MaxErrors {
			errs = append(errs, err.Error())
		}
	}
	for _, root := range r.paths {
		root = filepath.Clean(root)
		if real, err := filepath.EvalSymlinks(root); err == nil {
			root = real
		}
		base := depth(root)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if err != nil {
				if !(path == root && errors.Is(err, fs.ErrNotExist)) {
					addErr(err)
				}
				return nil
			}
			if d.IsDir() {
				if depth(path)-base >= r.maxDepth {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || seen[path] || strings.HasPrefix(d.Name(), "known_hosts") {
				return nil
			}
			seen[path] = true
			found, err := readKeys(path)
			if err != nil {
				addErr(err)
				return nil
			}
			stats.FilesRead++
			keys = append(keys, found...)
			if len(keys) >= MaxKeys {
				stats.Truncated = true
				return fs.SkipAll
			}
			return nil
		})
		if err != nil {
			res := module.FailResult(append(errs, fmt.Sprintf("sshkey: walk of %s interrupted: %v", root, err))...)
			return finish(res, keys, stats)
		}
		if stats.Truncated {
			break
		}
	}
	return finish(action.Result{Success: true, Errors: errs}, keys, stats)
}

func finish(res action.Result, keys []Key, stats Statistics) action.Result {
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Path < keys[j].Path })
	if keys == nil {
		keys = []Key{}
	}
	stats.KeysFound = len(keys)
	res.FoundAnything = len(keys) > 0
	res.Elements, _ = json.Marshal(Elements{Keys: keys})
	res.Statistics, _ = json.Marshal(stats)
	return res
}

func depth(p string) int {
	return strings.Count(filepath.ToSlash(filepath.Clean(p)), "/")
}

// readKeys reads a file of at most MaxFileSize bytes and returns the keys
// in it.
func readKeys(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, nil
	}
	return ParseKeys(path, data), nil
}

var privateMarker = []byte("PRIVATE KEY-----")

// privateFrame matches a PEM private key's BEGIN line followed, later, by its
// END line, each on a line of its own.
var privateFrame = regexp.MustCompile(`(?m)^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?$[\s\S]*^-----END [A-Z0-9 ]*PRIVATE KEY-----`)

// ParseKeys returns the keys in the content of the file at path (see the
// package documentation). It never fails: content that holds no key gives
// no key.
func ParseKeys(path string, data []byte) []Key {
	if bytes.Contains(data, privateMarker) {
		if k, ok := parsePrivate(path, data); ok {
			return []Key{k}
		}
		return nil
	}
	kind := KindPublic
	if strings.HasPrefix(filepath.Base(path), "authorized_keys") {
		kind = KindAuthorizedKeys
	}
	var keys []Key
	rest := data
	for len(rest) > 0 {
		pk, comment, _, next, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		k := describe(pk)
		k.Path, k.Kind, k.Comment = path, kind, clean(comment)
		keys = append(keys, k)
		rest = next
	}
	return keys
}

// parsePrivate describes the private key in data. It reports false when
// data only mentions a private key (a program or a cache file holding the
// marker text) without holding a PEM block of one.
func parsePrivate(path string, data []byte) (Key, bool) {
	k := Key{Path: path, Kind: KindPrivate}
	raw, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		signer, err := ssh.NewSignerFromKey(raw)
		if err == nil {
			d := describe(signer.PublicKey())
			d.Path, d.Kind = path, KindPrivate
			return d, true
		}
	case errors.As(err, &missing):
		k.Encrypted = true
		if missing.PublicKey != nil {
			d := describe(missing.PublicKey)
			d.Path, d.Kind, d.Encrypted = path, KindPrivate, true
			return d, true
		}
	default:
		// A damaged key file is still worth reporting; a file that merely
		// holds the marker text (a program, a build cache entry) is not.
		if !privateFrame.Match(data) {
			return Key{}, false
		}
		k.Encrypted = bytes.Contains(data, []byte("ENCRYPTED"))
	}
	// The public half may sit next to the private key.
	if pub, err := os.ReadFile(path + ".pub"); err == nil && len(pub) <= MaxFileSize {
		if pk, comment, _, _, err := ssh.ParseAuthorizedKey(pub); err == nil {
			d := describe(pk)
			d.Path, d.Kind, d.Encrypted, d.Comment = path, KindPrivate, k.Encrypted, clean(comment)
			return d, true
		}
	}
	return k, true
}

// describe returns a key's type, size and fingerprints.
func describe(pk ssh.PublicKey) Key {
	k := Key{
		SHA256: ssh.FingerprintSHA256(pk),
		MD5:    "MD5:" + ssh.FingerprintLegacyMD5(pk),
	}
	switch pk.Type() {
	case ssh.KeyAlgoRSA:
		k.Type = "RSA"
	case ssh.KeyAlgoDSA: //nolint:staticcheck // still reported
		k.Type = "DSA"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		k.Type = "ECDSA"
	case ssh.KeyAlgoED25519:
		k.Type, k.Bits = "ED25519", 256
	case ssh.KeyAlgoSKECDSA256:
		k.Type, k.Bits = "ECDSA-SK", 256
	case ssh.KeyAlgoSKED25519:
		k.Type, k.Bits = "ED25519-SK", 256
	default:
		k.Type = pk.Type()
	}
	if cpk, ok := pk.(ssh.CryptoPublicKey); ok {
		switch c := cpk.CryptoPublicKey().(type) {
		case *rsa.PublicKey:
			k.Bits = c.N.BitLen()
		case *ecdsa.PublicKey:
			k.Bits = c.Curve.Params().BitSize
		case *dsa.PublicKey:
			k.Bits = c.P.BitLen()
		case ed25519.PublicKey:
			k.Bits = 256
		}
	}
	return k
}

// clean keeps the printable characters of a comment, at most 256 bytes.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}
