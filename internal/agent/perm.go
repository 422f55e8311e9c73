package agent

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/migplatform/mig/internal/secfile"
)

// File permissions of the state directory.
//
// Everything the agent writes is 0600 in directories that are 0700 and owned
// by the agent's user. At start, as ssh does with its keys, the agent checks
// what it is about to trust:
//
//   - the state directory and its inbox/, outbox/ and corrupt/ must be owned
//     by the agent's user, or the agent refuses to start (another user could
//     replace any file in them); if group or others have any access, the
//     agent sets them to 0700 and warns;
//   - agent.key and relay.json, which are secrets, must be owned by the
//     agent's user and give group and others no access, or the agent refuses
//     to start, naming the file and the fix: a key others could read may be
//     known to them, and only an operator can decide whether to trust it
//     again (chmod 600) or to make a new identity (remove it);
//   - a journal.json that group or others could write, or that another user
//     owns, may have been edited to forget actions: it is treated as lost
//     (moved aside, and a new journal with a new epoch begins, see replay.go).
//
// The checks are internal/secfile's, shared with mig-server and mig. Windows
// has no such modes; there the checks do nothing and the directory's ACL is
// the operator's to set.

// checkStatePerms makes the state directory if it is missing and checks it,
// its corrupt/ directory and the secret files in it before they are used.
func checkStatePerms(stateDir string, log *slog.Logger) error {
	if err := ensurePrivateDir(stateDir, log); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(stateDir, "corrupt")); err == nil {
		if err := ensurePrivateDir(filepath.Join(stateDir, "corrupt"), log); err != nil {
			return err
		}
	}
	if err := checkSecretFile(filepath.Join(stateDir, "agent.key"), "agent key"); err != nil {
		return err
	}
	return checkSecretFile(credPath(stateDir), "relay credentials")
}

// ensurePrivateDir makes dir (0700) if it is missing, refuses it if another
// user owns it, and takes away the access of group and others.
func ensurePrivateDir(dir string, log *slog.Logger) error {
	was, err := secfile.PrivateDir(dir)
	if err != nil {
		return err
	}
	if was != 0 {
		log.Warn("the state directory was open to other users; made it 0700", "dir", dir, "mode", fmt.Sprintf("%04o", was))
	}
	return nil
}

// checkSecretFile refuses a secret file (the identity key, the relay
// credentials) that is not a regular file, that another user owns or that
// group or others may read or write. A missing file is fine.
func checkSecretFile(path, what string) error {
	return secfile.Check(path, secfile.Rule{What: what, Kind: secfile.Secret, Own: true,
		Otherwise: "remove it (the agent makes a new one)"})
}

// journalTampered says why a journal file cannot be trusted, or returns nil.
func journalTampered(path string) error {
	if !secfile.Enabled {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // reading it reports the error
	}
	if uid, ok := secfile.ForeignOwner(fi); ok {
		return fmt.Errorf("%w: journal %s is owned by uid %d, not by the agent's user", ErrCorrupt, path, uid)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("%w: journal %s is mode %04o: other users could have changed it", ErrCorrupt, path, m)
	}
	return nil
}
