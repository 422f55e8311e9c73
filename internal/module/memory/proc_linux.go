package memory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// procRoot is where the proc file system is mounted.
const procRoot = "/proc"

// maxMapsSize bounds how much of a maps file is read.
const maxMapsSize = 64 << 20

// maxErrors bounds the errors a scan returns.
const maxErrors = 30

// scanProcesses lists the processes of /proc and matches each one.
func (r *Runner) scanProcesses(ctx context.Context, found func(Process, map[*search][]Hit), stats *Statistics) ([]string, error) {
	pids := r.pids
	if pids == nil {
		var err error
		if pids, err = listPIDs(); err != nil {
			return nil, fmt.Errorf("memory module: %w", err)
		}
	}
	self, parent := os.Getpid(), os.Getppid()
	skipParent := sameExe(self, parent)
	var errs []string
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return errs, fmt.Errorf("memory module: scan interrupted: %w", err)
		}
		if pid == self || (pid == parent && skipParent) {
			continue
		}
		stats.Processes++
		name, hits, err := r.scanPID(ctx, pid, stats)
		if err != nil {
			stats.ProcessesSkipped++
			if !errors.Is(err, fs.ErrNotExist) && len(errs) < maxErrors {
				errs = append(errs, fmt.Sprintf("pid %d: %v", pid, err))
			}
			continue
		}
		if len(hits) > 0 {
			found(Process{PID: pid, Name: name}, hits)
		}
	}
	return errs, nil
}

// listPIDs returns the pids of /proc in increasing order.
func listPIDs() ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 && e.IsDir() {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// sameExe reports whether two processes run the same executable file.
func sameExe(a, b int) bool {
	fa, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(a), "exe"))
	if err != nil {
		return false
	}
	fb, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(b), "exe"))
	return err == nil && os.SameFile(fa, fb)
}

// processName is the base name of a process's executable, or its comm when
// the executable cannot be resolved.
func processName(pid int) (string, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil && exe != "" {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)")), nil
	}
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(comm)), nil
}

// scanPID matches one process.
func (r *Runner) scanPID(ctx context.Context, pid int, stats *Statistics) (string, map[*search][]Hit, error) {
	name, err := processName(pid)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	maps, err := os.Open(filepath.Join(dir, "maps"))
	if err != nil {
		return name, nil, err
	}
	regions, paths, err := parseMaps(io.LimitReader(maps, maxMapsSize))
	maps.Close()
	if err != nil {
		return name, nil, err
	}
	if len(paths) == 0 && len(regions) == 0 {
		// A kernel thread: no memory of its own.
		return name, nil, nil
	}
	var mem io.ReaderAt
	if r.needsMemory() {
		f, err := os.Open(filepath.Join(dir, "mem"))
		if err != nil {
			return name, nil, err
		}
		defer f.Close()
		mem = f
	}
	hits, err := r.matchProcess(ctx, name, paths, regions, mem, stats)
	return name, hits, err
}

func (r *Runner) needsMemory() bool {
	for _, s := range r.searches {
		if s.memFilters() > 0 {
			return true
		}
	}
	return false
}

// parseMaps parses /proc/<pid>/maps and returns the readable regions worth
// reading, in address order, and the paths of all mapped files, each once.
// Regions leave out regions without read permission,
// the kernel's [vvar], [vvar_vclock] and [vsyscall], and device mappings
// other than /dev/zero (reading them can have effects or block).
func parseMaps(r io.Reader) ([]region, []string, error) {
	var (
		out   []region
		paths []string
		seen  = map[string]bool{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		// start-end perms offset dev inode [path]
		fields := bytes.Fields(line)
		if len(fields) < 5 {
			return nil, nil, fmt.Errorf("maps line %q: too few fields", line)
		}
		start, end, ok := strings.Cut(string(fields[0]), "-")
		if !ok {
			return nil, nil, fmt.Errorf("maps line %q: bad address range", line)
		}
		s, err1 := strconv.ParseUint(start, 16, 64)
		e, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			return nil, nil, fmt.Errorf("maps line %q: bad address range", line)
		}
		path := ""
		if len(fields) > 5 {
			// The path is the rest of the line after the inode, and may hold spaces.
			idx := bytes.Index(line, fields[5])
			path = string(line[idx:])
		}
		if strings.HasPrefix(path, "/") && !seen[path] {
			seen[path] = true
			paths = append(paths, path)
		}
		perms := fields[1]
		if len(perms) == 0 || perms[0] != 'r' {
			continue
		}
		switch {
		case path == "[vvar]", path == "[vvar_vclock]", path == "[vsyscall]":
			continue
		case strings.HasPrefix(path, "/dev/") && path != "/dev/zero" && !strings.HasPrefix(path, "/dev/zero "):
			continue
		case s > 1<<63-1 || e > 1<<63:
			continue
		}
		out = append(out, region{start: s, end: e, path: path})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return out, paths, nil
}
