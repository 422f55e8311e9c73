// Package secfile keeps what MIG's programs trust on disk out of other
// users' reach, and checks it before it is used, as ssh does with its keys.
//
// Two kinds of file are told apart. A Secret (a private key, a token, a
// password, the database) may be read and written by its owner only: mode
// 0600 or less. A Public file (a certificate, a public key, an ACL) may be
// read by anyone but written by its owner only: mode 0644 or less. Either
// must be a regular file owned by the user the program runs as (or by root,
// for a file the operator put in place), in a directory that other users
// cannot write to (a sticky directory such as /tmp is accepted: others
// cannot replace a file they do not own there). Check refuses anything else
// with an error that names the file, its mode or owner, and the fix.
//
// PrivateDir makes the 0700 directories the programs keep their state in,
// and closes one it finds open.
//
// Windows has no such modes: there Enabled is false, the checks pass and
// the directories' ACLs are the operator's to set.
package secfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrUnsafe is wrapped by every error about a file or directory that other
// users could read or change.
var ErrUnsafe = errors.New("unsafe permissions")

// Enabled reports whether files have Unix modes here, and so whether the
// checks do anything.
const Enabled = enabled

// Kind says what other users may do with a file.
type Kind int

const (
	// Public files may be read by anyone and written by their owner only.
	Public Kind = iota
	// Secret files may be read and written by their owner only.
	Secret
)

// Rule says how a file must be protected, and how to name it in errors.
type Rule struct {
	// What names the file in errors, before its path: "api.key",
	// "agent key", "client configuration".
	What string
	// Kind is Secret or Public.
	Kind Kind
	// Own marks a file the program writes itself, in a directory it keeps
	// private with PrivateDir: a symbolic link is refused, the owner must
	// be the program's user (not root), and the directory is not checked
	// again. Without Own, a symbolic link is followed (certificates and
	// keys deployed by tools often are links) and the directories of both
	// the link and its target are checked.
	Own bool
	// Otherwise ends the advice given for a Secret others could read,
	// after "if it can still be trusted, chmod 600 PATH": what to do with
	// one that may have leaked, such as "remove it (the agent makes a new
	// one)". Empty: the advice is "chmod 600 PATH".
	Otherwise string
}

// Check checks the file at path against r before it is read. A missing
// file passes, when its directory does (the program may be about to create
// it there): reading it reports that it is missing.
func Check(path string, r Rule) error {
	if !Enabled {
		return nil
	}
	if !r.Own {
		dirs := []string{filepath.Dir(path)}
		if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != dirs[0] {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, dir := range dirs {
			if err := checkDir(dir, r.What, path); err != nil {
				return err
			}
		}
	}
	stat := os.Stat
	if r.Own {
		stat = os.Lstat
	}
	fi, err := stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.What, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %s is not a regular file", ErrUnsafe, r.What, path)
	}
	if uid, ok := foreignOwner(fi, !r.Own); ok {
		return fmt.Errorf("%w: %s %s is owned by uid %d, not by this program's user (uid %d); chown it, or remove it",
			ErrUnsafe, r.What, path, uid, os.Geteuid())
	}
	m := fi.Mode().Perm()
	switch {
	case r.Kind == Secret && m&0o077 != 0:
		fix := "chmod 600 " + path
		if r.Otherwise != "" {
			fix = "if it can still be trusted, " + fix + ", otherwise " + r.Otherwise
		}
		return fmt.Errorf("%w: %s %s is mode %04o: other users may have read or changed it; %s",
			ErrUnsafe, r.What, path, m, fix)
	case r.Kind == Public && m&0o022 != 0:
		return fmt.Errorf("%w: %s %s is mode %04o: other users may have changed it; check it, then chmod go-w %s",
			ErrUnsafe, r.What, path, m, path)
	}
	return nil
}

// checkDir refuses a directory that a user other than this program's and
// root owns, or that group or others may write to without the sticky bit.
func checkDir(dir, what, path string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // reading the file reports it
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if uid, ok := foreignOwner(fi, true); ok {
		return fmt.Errorf("%w: %s %s is in %s, owned by uid %d, not by this program's user (uid %d) or root: that user could replace it; move it, or chown the directory",
			ErrUnsafe, what, path, dir, uid, os.Geteuid())
	}
	if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
		return fmt.Errorf("%w: %s %s is in %s, which is mode %04o: other users could replace it; chmod go-w %s",
			ErrUnsafe, what, path, dir, m.Perm(), dir)
	}
	return nil
}

// PrivateDir makes dir, and its missing parents, mode 0700; refuses it if
// another user owns it (another user could replace what is in it); and
// makes it 0700 if it is not. It returns the mode the directory had when
// group or others had access to it, for the caller to warn about, and 0
// otherwise.
func PrivateDir(dir string) (was fs.FileMode, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("make %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s is not a directory", dir)
	}
	if !Enabled {
		return 0, nil
	}
	if uid, ok := foreignOwner(fi, false); ok {
		return 0, fmt.Errorf("%w: %s is owned by uid %d, not by this program's user (uid %d): another user could replace what is in it; chown it",
			ErrUnsafe, dir, uid, os.Geteuid())
	}
	m := fi.Mode().Perm()
	if m == 0o700 {
		return 0, nil
	}
	// Chmod, not the mode of creation: a umask must not decide.
	if err := os.Chmod(dir, 0o700); err != nil {
		return 0, fmt.Errorf("%w: %s is mode %04o and cannot be made 0700: %v", ErrUnsafe, dir, m, err)
	}
	if m&0o077 != 0 {
		return m, nil
	}
	return 0, nil
}

// ForeignOwner returns the owner of a file when it is not the program's
// effective user.
func ForeignOwner(fi fs.FileInfo) (uid uint32, foreign bool) { return foreignOwner(fi, false) }
