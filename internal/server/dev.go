package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/fleet"
	"github.com/migplatform/mig/internal/relay/dialer"
	"github.com/migplatform/mig/internal/secfile"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

// DevOptions configure the development platform.
type DevOptions struct {
	// Dir holds everything -dev makes (keys, certificates, database, agent
	// state); default ~/.mig/dev.
	Dir string
	// APIAddr and RelayAddr default to DefaultAPIAddr and DefaultRelayAddr;
	// "127.0.0.1:0" picks free ports (tests).
	APIAddr, RelayAddr string
	// ClientConfig is where the client configuration for mig is written
	// when it does not exist or was written by -dev before; default ~/.migrc.
	ClientConfig string
	// ModuleExe is the binary that serves module child processes for the
	// local agent ("<exe> -m <module>"); default this executable.
	ModuleExe string
	// NoAgent starts the platform without the local agent.
	NoAgent bool
	// Heartbeat is the local agent's heartbeat interval (default 30s).
	Heartbeat time.Duration
	// Agents is the number of simulated agents (internal/fleet) to run in
	// this process besides the local agent.
	Agents int
}

// RunDev runs a whole platform on loopback until ctx ends: the API, the
// embedded relay and store, a development investigator whose key mig finds
// through the client config, and one local agent that trusts that key. It
// prints what to run next to out.
func RunDev(ctx context.Context, opts DevOptions, logger *slog.Logger, out io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	if was, err := secfile.PrivateDir(dir); err != nil {
		return fmt.Errorf("dev dir: %w", err)
	} else if was != 0 {
		logger.Warn("the dev directory was open to other users; made it 0700", "dir", dir, "mode", fmt.Sprintf("%04o", was))
	}
	if err := checkDevFiles(dir); err != nil {
		return err
	}
	caFile, certFile, keyFile, err := EnsureDevTLS(dir)
	if err != nil {
		return fmt.Errorf("dev TLS: %w", err)
	}
	pubKey, fp, err := ensureDevInvestigator(dir)
	if err != nil {
		return fmt.Errorf("dev investigator: %w", err)
	}
	token, err := ensureSecret(filepath.Join(dir, "enrollment-token"))
	if err != nil {
		return fmt.Errorf("dev enrollment token: %w", err)
	}

	cfg := DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = opts.APIAddr, certFile, keyFile
	cfg.Relay.Listen, cfg.Relay.CA = opts.RelayAddr, caFile
	cfg.Store = "sqlite:" + filepath.Join(dir, "mig.db")
	cfg.EnrollmentTokens = []string{token}
	srv, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()

	if err := ensureInvestigator(ctx, srv.Store, "Dev Investigator", string(pubKey), fp); err != nil {
		return err
	}
	devClient := filepath.Join(dir, "client.json")
	wrote, err := writeDevClientConfig(opts.ClientConfig, devClient, srv.APIURL(), caFile, filepath.Join(dir, "investigator.asc"))
	if err != nil {
		return err
	}

	aclJSON, _ := json.Marshal(map[string]any{"default": map[string]any{"minimumweight": 1,
		"investigators": map[string]any{"Dev Investigator": map[string]any{"fingerprint": fp, "weight": 1}}}})
	// Written for mig-fleet and other agents that join the dev platform;
	// 0600 like everything here but certificates and the public key: no
	// other user needs it.
	if err := atomicfile.Write(filepath.Join(dir, "acl.json"), aclJSON, 0o600); err != nil {
		return err
	}
	if opts.Agents > 0 {
		f, err := startDevFleet(ctx, opts.Agents, filepath.Join(dir, "fleet"), srv.APIURL(), caFile, token,
			string(pubKey), string(aclJSON), logger)
		if err != nil {
			return err
		}
		fleetCtx, stopFleet := context.WithCancel(ctx)
		fleetDone := make(chan error, 1)
		go func() { fleetDone <- f.Run(fleetCtx) }()
		defer func() {
			stopFleet()
			if err := <-fleetDone; err != nil {
				logger.Error("simulated agents", "err", err)
			}
		}()
	}
	var agentDone chan error
	if !opts.NoAgent {
		acfg := agent.DefaultConfig()
		acfg.Server = srv.APIURL()
		acfg.CA = caFile
		acfg.EnrollmentToken = token
		acfg.StateDir = filepath.Join(dir, "agent")
		acfg.KeyringData = string(pubKey)
		acfg.ACLData = string(aclJSON)
		acfg.Tags = map[string]string{"env": "dev"}
		acfg.ModuleExe = opts.ModuleExe
		acfg.Heartbeat = opts.Heartbeat
		a, err := agent.New(acfg, logger, dialer.New(logger))
		if err != nil {
			return fmt.Errorf("local agent: %w", err)
		}
		agentDone = make(chan error, 1)
		go func() { agentDone <- a.Run(ctx) }()
	}

	printDevBanner(out, opts, srv, dir, fp, devClient, wrote)
	select {
	case <-ctx.Done():
	case err := <-srv.Err():
		return err
	}
	if agentDone != nil {
		<-agentDone
	}
	return nil
}

// withDefaults fills the options left zero.
func (opts DevOptions) withDefaults() (DevOptions, error) {
	home, _ := os.UserHomeDir()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(home, ".mig", "dev")
	}
	if opts.ClientConfig == "" {
		opts.ClientConfig = filepath.Join(home, ".migrc")
	}
	if opts.APIAddr == "" {
		opts.APIAddr = DefaultAPIAddr
	}
	if opts.RelayAddr == "" {
		opts.RelayAddr = DefaultRelayAddr
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 30 * time.Second
	}
	if opts.ModuleExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return opts, fmt.Errorf("find this executable to run modules: %w", err)
		}
		opts.ModuleExe = exe
	}
	return opts, nil
}

// writeDevClientConfig writes mig's configuration for the dev platform to
// devClient, and to path unless path exists and was not written by -dev.
// It reports whether path was written.
func writeDevClientConfig(path, devClient, apiURL, caFile, keyFile string) (bool, error) {
	conf, err := json.MarshalIndent(map[string]any{
		"api":     map[string]string{"url": apiURL, "ca": caFile},
		"signer":  map[string]string{"keyfile": keyFile},
		"targets": map[string]any{"default": "status='online'", "macros": map[string]string{}},
	}, "", "  ")
	if err != nil {
		return false, err
	}
	return writeClientConfig(path, devClient, append(conf, '\n'))
}

// printDevBanner tells the operator what is running and what to try.
func printDevBanner(out io.Writer, opts DevOptions, srv *Server, dir, fp, devClient string, wrote bool) {
	fmt.Fprintf(out, "MIG development platform is running.\n")
	fmt.Fprintf(out, "  API:          %s\n  relay:        %s\n  state:        %s\n", srv.APIURL(), srv.RelayURL(), dir)
	fmt.Fprintf(out, "  investigator: Dev Investigator, key %s\n", fp)
	if wrote {
		fmt.Fprintf(out, "  client config: %s\n", opts.ClientConfig)
	} else {
		fmt.Fprintf(out, "  client config: %s (%s exists and was not written by -dev: export MIG_CONFIG=%s)\n", devClient, opts.ClientConfig, devClient)
	}
	if opts.Agents > 0 {
		fmt.Fprintf(out, "  fleet:        %d simulated agents (in-process modules, fixture file trees) in %s\n", opts.Agents, filepath.Join(dir, "fleet"))
	}
	fmt.Fprintf(out, "\nFrom another terminal, try:\n  mig agents\n  mig file -path /etc -name '^passwd$'\n  mig file -t local -path /etc -name '^hosts$'\n")
}

// checkDevFiles checks the files -dev reads from its directory, before it
// reads them (Start checks the TLS files and the database).
func checkDevFiles(dir string) error {
	own := func(name, what string, kind secfile.Kind, otherwise string) error {
		return secfile.Check(filepath.Join(dir, name), secfile.Rule{What: what, Kind: kind, Own: true, Otherwise: otherwise})
	}
	return errors.Join(
		own("enrollment-token", "dev enrollment token", secfile.Secret, "remove it (-dev makes a new one)"),
		own("investigator.asc", "dev investigator key", secfile.Secret,
			"remove it and investigator.pub.asc (-dev makes a new investigator)"),
		own("investigator.pub.asc", "dev investigator public key", secfile.Public, ""),
	)
}

// ensureDevInvestigator makes, once, the development investigator's key.
// Its private key stays in dir (0600), where the client config points mig.
func ensureDevInvestigator(dir string) (pub []byte, fp string, err error) {
	privFile := filepath.Join(dir, "investigator.asc")
	pubFile := filepath.Join(dir, "investigator.pub.asc")
	if fileExists(privFile) && fileExists(pubFile) {
		if pub, err = os.ReadFile(pubFile); err != nil {
			return nil, "", err
		}
		fp, err = sign.ParsePublicKey(string(pub))
		return pub, fp, err
	}
	priv, pub, fp, err := sign.GenerateKey("MIG Dev Investigator", "dev@mig.invalid")
	if err != nil {
		return nil, "", err
	}
	if err := atomicfile.Write(privFile, priv, 0o600); err != nil {
		return nil, "", err
	}
	if err := atomicfile.Write(pubFile, pub, 0o644); err != nil {
		return nil, "", err
	}
	return pub, fp, nil
}

// ensureSecret reads a secret from path, making a random one the first time.
func ensureSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) >= 16 {
		return string(bytes.TrimSpace(b)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(b[:])
	return s, atomicfile.Write(path, []byte(s+"\n"), 0o600)
}

// investigatorStore is what adding an administrator investigator reads and
// writes (-dev, -add-investigator).
type investigatorStore interface {
	InvestigatorByFingerprint(ctx context.Context, fingerprint string) (action.Investigator, error)
	CreateInvestigator(ctx context.Context, inv action.Investigator) (int64, error)
}

var _ investigatorStore = store.Store(nil)

// ensureInvestigator adds an administrator investigator unless their key is
// already known.
func ensureInvestigator(ctx context.Context, st investigatorStore, name, pub, fp string) error {
	if _, err := st.InvestigatorByFingerprint(ctx, fp); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	inv, err := api.NewInvestigator(name, pub, api.AllPermissions, time.Now())
	if err != nil {
		return err
	}
	inv.Status = action.InvestigatorActive
	_, err = st.CreateInvestigator(store.WithAudit(ctx, api.InvestigatorCreateRecord(inv, audit.ActorServer)), inv)
	return err
}

// writeClientConfig writes the dev client config to devPath, and to path
// when path does not exist or holds what -dev wrote before. It reports
// whether path was written.
func writeClientConfig(path, devPath string, conf []byte) (bool, error) {
	prev, _ := os.ReadFile(devPath)
	if err := atomicfile.Write(devPath, conf, 0o600); err != nil {
		return false, err
	}
	cur, err := os.ReadFile(path)
	if err == nil && !bytes.Equal(cur, prev) && !bytes.Equal(cur, conf) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, atomicfile.Write(path, conf, 0o600)
}

// startDevFleet prepares n simulated agents for the dev platform. With the
// relay in this process, each agent costs two open files here.
func startDevFleet(ctx context.Context, n int, dir, apiURL, caFile, token, keyring, aclJSON string,
	logger *slog.Logger) (*fleet.Fleet, error) {
	limit, err := fleet.RaiseFileLimit()
	if err != nil {
		logger.Warn("cannot raise the open files limit", "err", err)
	}
	if limit > 0 && uint64(2*n)+512 > limit {
		return nil, fmt.Errorf("-agents %d needs about %d open files in one process (relay and agents) and the limit is %d: run the agents in mig-fleet processes instead", n, 2*n+512, limit)
	}
	return fleet.New(fleet.Config{Server: apiURL, CA: caFile, EnrollmentToken: token, KeyringData: keyring,
		ACLData: aclJSON, N: n, Dir: dir, Prefix: "dev", AgentLogLevel: slog.LevelWarn}, logger)
}
