package server

import (
	"errors"
	"net/url"
	"strings"

	"github.com/migplatform/mig/internal/secfile"
)

// Files and their modes.
//
// mig-server checks, at start and before it reads them, the files its
// configuration names (internal/secfile; as ssh does): a secret that group
// or others may read or write, a public file (a certificate) they may write,
// a file another user owns, or a directory of one that others may write to
// (without the sticky bit) stops the server with an error naming the file,
// its mode and the fix. The table of files is in docs/ARCHITECTURE.md.

// Advice for a secret that may have leaked.
const (
	newTLSKey   = "make a new key and certificate"
	newNKey     = "make new keys (mig-server -gen-callout-key) and configure them in the NATS servers"
	rotateStore = "assume what the store holds was read (rotate API keys and enrollment tokens)"
)

// checkConfigFile checks the configuration file the server was started
// with: others may never write it, and may not read it when it holds
// secrets (secrets names the settings that do).
func checkConfigFile(path string, secrets []string) error {
	r := secfile.Rule{What: "configuration", Kind: secfile.Public}
	if len(secrets) > 0 {
		r = secfile.Rule{What: "configuration (it holds " + strings.Join(secrets, ", ") + ")", Kind: secfile.Secret,
			Otherwise: "change those secrets"}
	}
	return secfile.Check(path, r)
}

// secretSettings names the settings of c that hold a secret.
func (c *Config) secretSettings() []string {
	var s []string
	if len(c.EnrollmentTokens) > 0 {
		s = append(s, "enrollmenttokens")
	}
	if c.Relay.Password != "" || urlHasPassword(c.Relay.URL) {
		s = append(s, "relay.password")
	}
	if urlHasPassword(c.Relay.ManagementURL) {
		s = append(s, "relay.managementurl")
	}
	if c.Relay.Cluster.Password != "" {
		s = append(s, "relay.cluster.password")
	}
	if isPostgres(c.Store) && urlHasPassword(c.Store) {
		s = append(s, "store")
	}
	return s
}

// urlHasPassword reports whether one of the comma-separated URLs in s
// carries a password.
func urlHasPassword(s string) bool {
	for _, one := range strings.Split(s, ",") {
		if u, err := url.Parse(strings.TrimSpace(one)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return true
			}
		}
	}
	return false
}

// checkFiles checks every file the configuration names, before any is
// read, and reports every problem at once.
func checkFiles(cfg Config) error {
	type file struct {
		path string
		rule secfile.Rule
	}
	secret := func(what, otherwise string) secfile.Rule {
		return secfile.Rule{What: what, Kind: secfile.Secret, Otherwise: otherwise}
	}
	public := func(what string) secfile.Rule { return secfile.Rule{What: what, Kind: secfile.Public} }
	files := []file{
		{cfg.API.Key, secret("api.key", newTLSKey)},
		{cfg.API.Cert, public("api.cert")},
		{cfg.Relay.CA, public("relay.ca")},
		{cfg.Relay.CalloutIssuer, secret("relay.calloutissuer", newNKey)},
		{cfg.Relay.CalloutXKey, secret("relay.calloutxkey", newNKey)},
		{cfg.Relay.Cluster.TLS.Key, secret("relay.cluster.tls.key", newTLSKey)},
		{cfg.Relay.Cluster.TLS.Cert, public("relay.cluster.tls.cert")},
		{cfg.Relay.Cluster.TLS.CA, public("relay.cluster.tls.ca")},
	}
	var errs []error
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := secfile.Check(f.path, f.rule); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkStoreFiles(cfg.Store); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkStoreFiles checks the files of the store: the SQLite database and
// the -wal, -shm and -journal files SQLite keeps next to it (secrets), or
// the TLS files a PostgreSQL URL names.
func checkStoreFiles(store string) error {
	var errs []error
	check := func(path string, r secfile.Rule) {
		if err := secfile.Check(path, r); err != nil {
			errs = append(errs, err)
		}
	}
	if path, ok := strings.CutPrefix(store, "sqlite:"); ok {
		check(path, secfile.Rule{What: "store database", Kind: secfile.Secret, Otherwise: rotateStore})
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			check(path+suffix, secfile.Rule{What: "store database", Kind: secfile.Secret, Otherwise: rotateStore})
		}
		return errors.Join(errs...)
	}
	if !isPostgres(store) {
		return nil
	}
	u, err := url.Parse(store)
	if err != nil {
		return nil // Validate reports it
	}
	q := u.Query()
	if p := q.Get("sslkey"); p != "" {
		check(p, secfile.Rule{What: "store sslkey", Kind: secfile.Secret, Otherwise: newTLSKey})
	}
	if p := q.Get("passfile"); p != "" {
		check(p, secfile.Rule{What: "store passfile", Kind: secfile.Secret, Otherwise: "change the passwords it holds"})
	}
	for _, k := range []string{"sslcert", "sslrootcert"} {
		if p := q.Get(k); p != "" {
			check(p, secfile.Rule{What: "store " + k, Kind: secfile.Public})
		}
	}
	return errors.Join(errs...)
}
