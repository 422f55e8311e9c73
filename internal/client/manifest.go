package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/manifest"
)

// Statuses of a manifest (the server's store.ManifestActive and
// store.ManifestDisabled).
const (
	ManifestActive   = "active"
	ManifestDisabled = "disabled"
)

// ManifestInfo is a mig-loader manifest as the API shows it
// (docs/API.md, "Manifests and the loader"). Signers are the signatures'
// keys the server's keyring verifies; a loader counts only those of its own
// keyring and ACL.
type ManifestInfo struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	OS          string          `json:"os"`
	Arch        string          `json:"arch"`
	Serial      uint64          `json:"serial"`
	Status      string          `json:"status"`
	PublishedBy string          `json:"published_by"`
	PublishedAt time.Time       `json:"published_at"`
	Files       []manifest.File `json:"files"`
	Created     time.Time       `json:"created"`
	Expires     time.Time       `json:"expires"`
	Signatures  int             `json:"signatures"`
	Signers     []string        `json:"signers"`
	// Body is the manifest's file form (not in listings).
	Body string `json:"body,omitempty"`
}

// Manifest parses the body, checking that it is the manifest the other
// fields describe.
func (mi ManifestInfo) Manifest() (*manifest.Manifest, error) {
	if mi.Body == "" {
		return nil, fmt.Errorf("%w: manifest %d came without its body", ErrBadResponse, mi.ID)
	}
	m, err := manifest.Parse([]byte(mi.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest %d: %w", ErrBadResponse, mi.ID, err)
	}
	if m.Name != mi.Name || m.OS != mi.OS || m.Arch != mi.Arch || m.Serial != mi.Serial {
		return nil, fmt.Errorf("%w: manifest %d is described as %s/%s/%s serial %d but its body is %s",
			ErrBadResponse, mi.ID, mi.Name, mi.OS, mi.Arch, mi.Serial, m)
	}
	return m, nil
}

// UploadedFile is a file the server stores for manifests to name.
type UploadedFile struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// minUploadRate is the slowest upload a client waits for: an upload may
// take RequestTimeout plus its size at this rate.
const minUploadRate = 64 << 10

// UploadManifestFile sends the file at path (at most manifest.MaxFileSize
// bytes) and checks that the server stored what was sent: the SHA-256 it
// answers must be want, the hash of the file the caller read.
func (c *Client) UploadManifestFile(ctx context.Context, path, want string) (UploadedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return UploadedFile{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return UploadedFile{}, err
	}
	if !st.Mode().IsRegular() {
		return UploadedFile{}, fmt.Errorf("uploading %s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 || size > manifest.MaxFileSize {
		return UploadedFile{}, fmt.Errorf("uploading %s: %d bytes; a manifest file is 1 byte to %d MiB", path, size, manifest.MaxFileSize>>20)
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout+time.Duration(size/minUploadRate)*time.Second)
	defer cancel()
	var out UploadedFile
	body := rawBody{r: io.LimitReader(f, size), size: size, contentType: "application/octet-stream", long: true}
	if err := c.do(ctx, http.MethodPost, "/manifests/files", nil, body, &out, true); err != nil {
		return UploadedFile{}, fmt.Errorf("uploading %s: %w", path, err)
	}
	if out.SHA256 != want || out.Size != size {
		return UploadedFile{}, fmt.Errorf("%w: uploading %s (sha256 %s, %d bytes): the server stored sha256 %s, %d bytes (did the file change while it was sent?)",
			ErrBadResponse, path, want, size, out.SHA256, out.Size)
	}
	return out, nil
}

// PublishManifest publishes a manifest signed at least once; every file it
// names must have been uploaded.
func (c *Client) PublishManifest(ctx context.Context, m *manifest.Manifest) (ManifestInfo, error) {
	data, err := m.Marshal()
	if err != nil {
		return ManifestInfo{}, err
	}
	var out ManifestInfo
	body := rawBody{r: strings.NewReader(string(data)), size: int64(len(data)), contentType: "application/json"}
	if err := c.do(ctx, http.MethodPost, "/manifests", nil, body, &out, true); err != nil {
		return ManifestInfo{}, fmt.Errorf("publishing manifest %s: %w", m, err)
	}
	return out, nil
}

// Manifests lists the published manifests, newest first, without bodies.
func (c *Client) Manifests(ctx context.Context) ([]ManifestInfo, error) {
	var out struct {
		Manifests []ManifestInfo `json:"manifests"`
	}
	if err := c.do(ctx, http.MethodGet, "/manifests", nil, nil, &out, true); err != nil {
		return nil, fmt.Errorf("listing manifests: %w", err)
	}
	return out.Manifests, nil
}

// Manifest returns one manifest with its body.
func (c *Client) Manifest(ctx context.Context, id int64) (ManifestInfo, error) {
	var out ManifestInfo
	if err := c.do(ctx, http.MethodGet, "/manifests/"+strconv.FormatInt(id, 10), nil, nil, &out, true); err != nil {
		return ManifestInfo{}, fmt.Errorf("reading manifest %d: %w", id, err)
	}
	return out, nil
}

// AddManifestSignature adds an armored signature over the encoding of
// manifest id; the server refuses it unless it verifies.
func (c *Client) AddManifestSignature(ctx context.Context, id int64, sig string) (ManifestInfo, error) {
	var out ManifestInfo
	body := map[string]string{"signature": sig}
	if err := c.do(ctx, http.MethodPost, "/manifests/"+strconv.FormatInt(id, 10)+"/signatures", nil, body, &out, true); err != nil {
		return ManifestInfo{}, fmt.Errorf("signing manifest %d: %w", id, err)
	}
	return out, nil
}

// SetManifestStatus activates or disables manifest id (ManifestActive,
// ManifestDisabled): loaders are served the active manifest of the
// highest serial.
func (c *Client) SetManifestStatus(ctx context.Context, id int64, status string) error {
	body := map[string]string{"status": status}
	if err := c.do(ctx, http.MethodPost, "/manifests/"+strconv.FormatInt(id, 10)+"/status", nil, body, nil, true); err != nil {
		return fmt.Errorf("setting manifest %d %s: %w", id, status, err)
	}
	return nil
}
