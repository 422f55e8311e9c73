package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/store"
)

// CreateManifest stores a manifest; ErrExists if its key is taken.
func (s *Store) CreateManifest(ctx context.Context, m store.ManifestRecord) (int64, error) {
	if err := store.CheckManifestRecord(m); err != nil {
		return 0, err
	}
	var id int64
	err := s.audited(ctx, func(q querier) error {
		err := q.QueryRowContext(ctx, `INSERT INTO manifests (name, os, arch, serial, status, body, created_at, published_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			m.Name, m.OS, m.Arch, int64(m.Serial), m.Status, m.Body,
			formatTime(storable(m.CreatedAt, time.Now())), m.PublishedBy).Scan(&id)
		switch {
		case isUniqueViolation(err):
			return fmt.Errorf("manifest %s/%s/%s serial %d: %w", m.Name, m.OS, m.Arch, m.Serial, store.ErrExists)
		case err != nil:
			return fmt.Errorf("create manifest %s/%s/%s serial %d: %w", m.Name, m.OS, m.Arch, m.Serial, err)
		}
		return nil
	})
	return id, err
}

const manifestCols = `id, name, os, arch, serial, status, body, created_at, published_by`

func scanManifest(scan func(...any) error) (store.ManifestRecord, error) {
	var m store.ManifestRecord
	var serial int64
	var created sql.NullString
	if err := scan(&m.ID, &m.Name, &m.OS, &m.Arch, &serial, &m.Status, &m.Body, &created, &m.PublishedBy); err != nil {
		return m, err
	}
	m.Serial = uint64(serial)
	var err error
	if m.CreatedAt, err = parseTime(created); err != nil {
		return m, fmt.Errorf("manifest %d: %w", m.ID, err)
	}
	return m, nil
}

// Manifest returns a manifest; ErrNotFound if unknown.
func (s *Store) Manifest(ctx context.Context, id int64) (store.ManifestRecord, error) {
	m, err := scanManifest(s.r.QueryRowContext(ctx, `SELECT `+manifestCols+` FROM manifests WHERE id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("manifest %d: %w", id, err)
	}
	return m, nil
}

// ListManifests returns every manifest, newest ID first.
func (s *Store) ListManifests(ctx context.Context) ([]store.ManifestRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+manifestCols+` FROM manifests ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	defer rows.Close()
	var out []store.ManifestRecord
	for rows.Next() {
		m, err := scanManifest(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list manifests: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	return out, nil
}

// UpdateManifestBody replaces a manifest's body if it is still old.
func (s *Store) UpdateManifestBody(ctx context.Context, id int64, old, body []byte) error {
	if err := store.CheckManifestBody(body); err != nil {
		return err
	}
	return s.audited(ctx, func(q querier) error {
		var cur []byte
		err := q.QueryRowContext(ctx, `SELECT body FROM manifests WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update manifest %d: %w", id, err)
		}
		if !bytes.Equal(cur, old) {
			return fmt.Errorf("manifest %d: body: %w", id, store.ErrConflict)
		}
		res, err := q.ExecContext(ctx, `UPDATE manifests SET body = ? WHERE id = ? AND body = ?`, body, id, old)
		if err != nil {
			return fmt.Errorf("update manifest %d: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("manifest %d: body: %w", id, store.ErrConflict)
		}
		return nil
	})
}

// SetManifestStatus activates or disables a manifest.
func (s *Store) SetManifestStatus(ctx context.Context, id int64, status string) error {
	if err := store.CheckManifestStatus(status); err != nil {
		return err
	}
	return s.audited(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, `UPDATE manifests SET status = ? WHERE id = ?`, status, id)
		if err != nil {
			return fmt.Errorf("set status of manifest %d: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("set status of manifest %d: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CurrentManifest returns the active manifest with the highest serial.
func (s *Store) CurrentManifest(ctx context.Context, name, os, arch string) (store.ManifestRecord, error) {
	m, err := scanManifest(s.r.QueryRowContext(ctx, `SELECT `+manifestCols+` FROM manifests
		WHERE name = ? AND os = ? AND arch = ? AND status = 'active' ORDER BY serial DESC LIMIT 1`, name, os, arch).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("active manifest %s/%s/%s: %w", name, os, arch, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("active manifest %s/%s/%s: %w", name, os, arch, err)
	}
	return m, nil
}

// PutManifestFile stores a file under its checked SHA-256, once.
func (s *Store) PutManifestFile(ctx context.Context, sum string, data []byte) (store.ManifestFileInfo, error) {
	if err := store.CheckManifestFile(sum, data); err != nil {
		return store.ManifestFileInfo{}, err
	}
	err := s.audited(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO manifest_files (sha256, size, data, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (sha256) DO NOTHING`, sum, int64(len(data)), data, formatTime(time.Now()))
		if err != nil {
			return fmt.Errorf("store manifest file %s: %w", sum, err)
		}
		return nil
	})
	if err != nil {
		return store.ManifestFileInfo{}, err
	}
	return s.ManifestFileInfo(ctx, sum)
}

// ManifestFileInfo returns a stored file's size.
func (s *Store) ManifestFileInfo(ctx context.Context, sum string) (store.ManifestFileInfo, error) {
	fi := store.ManifestFileInfo{SHA256: sum}
	var created sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT size, created_at FROM manifest_files WHERE sha256 = ?`, sum).Scan(&fi.Size, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return fi, fmt.Errorf("manifest file %s: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return fi, fmt.Errorf("manifest file %s: %w", sum, err)
	}
	if fi.CreatedAt, err = parseTime(created); err != nil {
		return fi, fmt.Errorf("manifest file %s: %w", sum, err)
	}
	return fi, nil
}

// ManifestFile returns a stored file.
func (s *Store) ManifestFile(ctx context.Context, sum string) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM manifest_files WHERE sha256 = ?`, sum).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("manifest file %s: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest file %s: %w", sum, err)
	}
	return data, nil
}
