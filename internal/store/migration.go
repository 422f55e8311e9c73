package store

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema file of a store implementation.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// ReadMigrations reads the schema files matching pattern in fsys (usually
// an embed.FS), named NNNN_description.sql with distinct positive versions,
// and returns them in version order.
func ReadMigrations(fsys fs.FS, pattern string) ([]Migration, error) {
	files, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: name must start with a positive version and '_'", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration files %q and %q have the same version %d", prev, base, v)
		}
		seen[v] = base
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", base, err)
		}
		out = append(out, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
