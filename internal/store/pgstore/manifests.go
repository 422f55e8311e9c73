package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/migplatform/mig/internal/store"
)

// CreateManifest stores a manifest; ErrExists if its key is taken.
func (s *Store) CreateManifest(ctx context.Context, m store.ManifestRecord) (int64, error) {
	if err := store.CheckManifestRecord(m); err != nil {
		return 0, err
	}
	var id int64
	err := s.audited(ctx, "create manifest", func(q querier) error {
		err := q.QueryRow(ctx, `INSERT INTO manifests (name, os, arch, serial, status, body, created_at, published_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			m.Name, m.OS, m.Arch, int64(m.Serial), m.Status, m.Body,
			storable(m.CreatedAt, time.Now()).UTC(), pgText(m.PublishedBy)).Scan(&id)
		switch {
		case pgCode(err) == codeUniqueViolation:
			return fmt.Errorf("manifest %s/%s/%s serial %d: %w", m.Name, m.OS, m.Arch, m.Serial, store.ErrExists)
		case err != nil:
			return fmt.Errorf("create manifest %s/%s/%s serial %d: %w", m.Name, m.OS, m.Arch, m.Serial, err)
		}
		return nil
	})
	return id, err
}

const manifestCols = `id, name, os, arch, serial, status, body, created_at, published_by`

func scanManifest(row pgx.Row) (store.ManifestRecord, error) {
	var m store.ManifestRecord
	var serial int64
	if err := row.Scan(&m.ID, &m.Name, &m.OS, &m.Arch, &serial, &m.Status, &m.Body, &m.CreatedAt, &m.PublishedBy); err != nil {
		return m, err
	}
	m.Serial = uint64(serial)
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// Manifest returns a manifest; ErrNotFound if unknown.
func (s *Store) Manifest(ctx context.Context, id int64) (store.ManifestRecord, error) {
	m, err := scanManifest(s.pool.QueryRow(ctx, `SELECT `+manifestCols+` FROM manifests WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("manifest %d: %w", id, err)
	}
	return m, nil
}

// ListManifests returns every manifest, newest ID first.
func (s *Store) ListManifests(ctx context.Context) ([]store.ManifestRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+manifestCols+` FROM manifests ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	defer rows.Close()
	var out []store.ManifestRecord
	for rows.Next() {
		m, err := scanManifest(rows)
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

// UpdateManifestBody replaces a manifest's body if it is still old, in a
// transaction that locks the row.
func (s *Store) UpdateManifestBody(ctx context.Context, id int64, old, body []byte) error {
	if err := store.CheckManifestBody(body); err != nil {
		return err
	}
	recs := store.AuditRecords(ctx)
	return s.inTx(ctx, "update manifest body", func(tx pgx.Tx) error {
		var cur []byte
		err := tx.QueryRow(ctx, `SELECT body FROM manifests WHERE id = $1 FOR UPDATE`, id).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update manifest %d: %w", id, err)
		}
		if !bytes.Equal(cur, old) {
			return fmt.Errorf("manifest %d: body: %w", id, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE manifests SET body = $1 WHERE id = $2`, body, id); err != nil {
			return fmt.Errorf("update manifest %d: %w", id, err)
		}
		if len(recs) > 0 {
			if _, err := appendAudit(ctx, tx, recs); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetManifestStatus activates or disables a manifest.
func (s *Store) SetManifestStatus(ctx context.Context, id int64, status string) error {
	if err := store.CheckManifestStatus(status); err != nil {
		return err
	}
	return s.audited(ctx, "set manifest status", func(q querier) error {
		tag, err := q.Exec(ctx, `UPDATE manifests SET status = $1 WHERE id = $2`, status, id)
		if err != nil {
			return fmt.Errorf("set status of manifest %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CurrentManifest returns the active manifest with the highest serial.
func (s *Store) CurrentManifest(ctx context.Context, name, os, arch string) (store.ManifestRecord, error) {
	if !validText(name) || !validText(os) || !validText(arch) {
		return store.ManifestRecord{}, fmt.Errorf("active manifest %q/%q/%q: %w", name, os, arch, store.ErrNotFound)
	}
	m, err := scanManifest(s.pool.QueryRow(ctx, `SELECT `+manifestCols+` FROM manifests
		WHERE name = $1 AND os = $2 AND arch = $3 AND status = 'active' ORDER BY serial DESC LIMIT 1`, name, os, arch))
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.audited(ctx, "store manifest file", func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO manifest_files (sha256, size, data, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (sha256) DO NOTHING`, sum, int64(len(data)), data, time.Now().UTC())
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
	if !validText(sum) {
		return fi, fmt.Errorf("manifest file %q: %w", sum, store.ErrNotFound)
	}
	err := s.pool.QueryRow(ctx, `SELECT size, created_at FROM manifest_files WHERE sha256 = $1`, sum).Scan(&fi.Size, &fi.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return fi, fmt.Errorf("manifest file %s: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return fi, fmt.Errorf("manifest file %s: %w", sum, err)
	}
	fi.CreatedAt = fi.CreatedAt.UTC()
	return fi, nil
}

// ManifestFile returns a stored file.
func (s *Store) ManifestFile(ctx context.Context, sum string) ([]byte, error) {
	if !validText(sum) {
		return nil, fmt.Errorf("manifest file %q: %w", sum, store.ErrNotFound)
	}
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM manifest_files WHERE sha256 = $1`, sum).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("manifest file %s: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest file %s: %w", sum, err)
	}
	return data, nil
}
