// Package atomicfile writes files so that a crash, a kill or a full disk
// leaves either the old content or the new one, never a part of either.
//
// Write makes a temporary file with a unique name in the destination's
// directory (named "."+base+".tmp" and random characters, created 0600 so
// that a secret is never readable while it is written), writes and fsyncs
// it, sets its mode, renames it over the destination and fsyncs the
// directory. On any error the temporary file is removed. A process killed
// during Write may leave a temporary file behind; readers of a directory
// skip names starting with "." (the agent removes them at start).
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Write replaces path with data, with mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close() // a second Close only returns an error
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	// Chmod, not the mode of creation: the umask must not change what
	// the caller asked for.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// Remove removes path and fsyncs its directory; a missing file is not an
// error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a directory's entries (creations, renames, removals)
// durable. Windows cannot sync a directory handle; its renames are durable
// once they return.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
