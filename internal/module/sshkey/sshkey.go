// Package sshkey is MIG's sshkey module: it finds SSH keys on an endpoint
// (private keys, public keys and the keys of authorized_keys files) and
// returns where they are, their type and size, their fingerprints in MD5 and
// SHA-256 as ssh-keygen prints them, and whether a private key is encrypted.
// Private key material never leaves the endpoint.
//
// # Parameters
//
//	{"paths": ["/home", "/root", "/etc/ssh"], "maxdepth": 8}
//
// paths are absolute paths to search (DefaultPaths when empty), maxdepth how
// deep under each one (DefaultMaxDepth when 0; a file directly inside a path
// is at depth 1). Symbolic links are not followed inside the walk.
//
// # What counts as a key
//
// Regular files of at most MaxFileSize bytes are read: a file holding a
// "PRIVATE KEY-----" PEM block is a private key (OpenSSH, PKCS#1, SEC 1 or
// PKCS#8); a file whose name starts with "authorized_keys" has its keys
// listed one per valid line; any other file with valid public key lines
// ("ssh-ed25519 AAAA... comment") is a public key file. known_hosts files
// are not keys of the endpoint's users and are skipped. The fingerprint of
// an encrypted private key comes from the public half the OpenSSH format
// keeps in clear, or from the ".pub" file next to it; when neither is there
// the key is listed without fingerprints.
//
// # Results
//
// Elements are an Elements, sorted by path; statistics a Statistics.
// FoundAnything is true when any key was found.
package sshkey

import (
	"errors"
	"runtime"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "sshkey"

// Limits and defaults.
const (
	DefaultMaxDepth = 8
	MaxMaxDepth     = 1000
	MaxFileSize     = 1 << 20
	MaxPaths        = 64
	MaxKeys         = 10000
	MaxErrors       = 30
)

// DefaultPaths returns where keys are searched by default on this platform:
// home directories and the SSH server's configuration directory.
func DefaultPaths() []string {
	switch runtime.GOOS {
	case "windows":
		return []string{`C:\Users`, `C:\ProgramData\ssh`}
	case "darwin":
		return []string{"/Users", "/var/root", "/etc/ssh"}
	default:
		return []string{"/root", "/home", "/etc/ssh"}
	}
}

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid sshkey parameters")

func init() { module.Register(sshkeyModule{}) }

type sshkeyModule struct{}

func (sshkeyModule) Name() string { return Name }

func (sshkeyModule) Summary() string {
	return "find SSH private, public and authorized keys with their fingerprints"
}

func (sshkeyModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}
