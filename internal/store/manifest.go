package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// Bounds of what the stores keep for mig-loader's manifests.
const (
	// MaxManifestBody bounds a manifest's JSON with its signatures.
	MaxManifestBody = 1 << 20
	// MaxManifestFileSize bounds one file a manifest names (the agent or
	// loader binary); it is manifest.MaxFileSize.
	MaxManifestFileSize = 512 << 20
)

// Manifest statuses: an active manifest may be served to loaders, a
// disabled one is not.
const (
	ManifestActive   = "active"
	ManifestDisabled = "disabled"
)

// ManifestRecord is a stored mig-loader manifest: its key (name, OS,
// architecture, serial) and status next to its body, the manifest's JSON
// with its signatures as package manifest marshals it.
type ManifestRecord struct {
	ID          int64
	Name        string
	OS          string
	Arch        string
	Serial      uint64
	Status      string
	Body        []byte
	CreatedAt   time.Time
	PublishedBy string // the publishing investigator's key fingerprint
}

// ManifestFileInfo describes a stored manifest file.
type ManifestFileInfo struct {
	SHA256    string // lower-case hex
	Size      int64
	CreatedAt time.Time
}

var (
	manifestKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	sha256HexRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// CheckManifestRecord checks a manifest record the same way in every
// store before it is created.
func CheckManifestRecord(m ManifestRecord) error {
	for _, f := range []struct{ what, v string }{{"name", m.Name}, {"os", m.OS}, {"arch", m.Arch}} {
		if !manifestKeyRE.MatchString(f.v) {
			return fmt.Errorf("manifest: %s %q is not 1 to 64 of a-z, 0-9, '.', '_', '-' starting with a letter or digit", f.what, f.v)
		}
	}
	if m.Serial == 0 || m.Serial > 1<<63-1 {
		return fmt.Errorf("manifest %s/%s/%s: serial %d is not in 1 to 2^63-1", m.Name, m.OS, m.Arch, m.Serial)
	}
	if err := CheckManifestStatus(m.Status); err != nil {
		return err
	}
	return CheckManifestBody(m.Body)
}

// CheckManifestBody checks that a manifest body is not empty and within
// MaxManifestBody.
func CheckManifestBody(body []byte) error {
	if len(body) == 0 || len(body) > MaxManifestBody {
		return fmt.Errorf("manifest body is %d bytes, want 1 to %d", len(body), MaxManifestBody)
	}
	return nil
}

// CheckManifestStatus checks a manifest status.
func CheckManifestStatus(status string) error {
	if status != ManifestActive && status != ManifestDisabled {
		return fmt.Errorf("manifest status %q is not %q or %q", status, ManifestActive, ManifestDisabled)
	}
	return nil
}

// CheckSHA256Hex checks a file's SHA-256 as manifests name it: 64
// lower-case hex digits.
func CheckSHA256Hex(sum string) error {
	if !sha256HexRE.MatchString(sum) {
		return fmt.Errorf("sha256 %q is not 64 lower-case hex digits", sum)
	}
	return nil
}

// CheckManifestFile checks a file before it is stored under sum: a size in
// 1 to MaxManifestFileSize, and data whose SHA-256 is sum.
func CheckManifestFile(sum string, data []byte) error {
	if err := CheckSHA256Hex(sum); err != nil {
		return err
	}
	if len(data) == 0 || len(data) > MaxManifestFileSize {
		return fmt.Errorf("manifest file %s is %d bytes, want 1 to %d", sum, len(data), MaxManifestFileSize)
	}
	got := sha256.Sum256(data)
	if h := hex.EncodeToString(got[:]); h != sum {
		return fmt.Errorf("manifest file: data has sha256 %s, not %s", h, sum)
	}
	return nil
}
