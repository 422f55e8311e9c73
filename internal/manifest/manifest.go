// Package manifest is the signed description of a release that mig-loader
// installs: which binaries, of which version, with which SHA-256 and size,
// for which channel, operating system and architecture, valid until when.
//
// Investigators sign a manifest as they sign actions, each with their own
// OpenPGP key, over Encoding: a domain-separated, deterministic form that no
// action, token or result signature can be mistaken for. The loader checks
// the signatures against its own keyring and the minimum weight of the
// "manifest" entry of its own ACL (Verify), never against anything the
// server says, so that whoever controls the server can withhold a release
// but cannot make an endpoint install one.
//
// The file form is JSON:
//
//	{
//	  "name": "prod",
//	  "serial": 1765130000,
//	  "os": "linux",
//	  "arch": "amd64",
//	  "created": "2026-12-07T18:00:00Z",
//	  "expires": "2027-01-06T18:00:00Z",
//	  "files": [
//	    {"role": "mig-agent", "version": "1.2.3", "sha256": "9f86...", "size": 15728640}
//	  ],
//	  "signatures": ["-----BEGIN PGP SIGNATURE-----..."]
//	}
//
// Parse is strict: unknown or duplicate keys, keys that differ from a field
// only by case, times that are not whole seconds in UTC, and trailing data
// are refused, so that what a loader reads is exactly what was signed.
package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/strictjson"
)

// EncodingPrefix starts every signed encoding (domain separation).
const EncodingPrefix = "mig-manifest-v1\n"

// ACLEntry is the entry of the loader's ACL whose investigators and minimum
// weight decide which manifests it installs. There is no fallback to the
// "default" entry: an ACL without this entry refuses every manifest.
const ACLEntry = "manifest"

// Roles of the files of a manifest.
const (
	RoleAgent  = "mig-agent"
	RoleLoader = "mig-loader"
)

// Limits checked by Parse and Validate.
const (
	// MaxSize bounds the JSON that Parse reads.
	MaxSize = 512 << 10
	// MaxFileSize bounds the size of each file.
	MaxFileSize = 512 << 20
	// MaxValidity bounds Expires - Created: a loader keeps installing a
	// manifest until it expires, so a withheld newer release (a freeze)
	// is noticed within this long at most.
	MaxValidity = 366 * 24 * time.Hour
	// MaxClockSkew is how far in the future Created may be.
	MaxClockSkew = 5 * time.Minute
)

// TimeFormat is the only form of the created and expires fields.
const TimeFormat = "2006-01-02T15:04:05Z"

// Errors wrapped by Parse, Validate and Verify.
var (
	// ErrInvalid is wrapped by every error of Parse and Validate.
	ErrInvalid = errors.New("invalid manifest")
	// ErrExpired means now is after Expires.
	ErrExpired = errors.New("manifest expired")
	// ErrNotYetValid means Created is further in the future than
	// MaxClockSkew.
	ErrNotYetValid = errors.New("manifest not yet valid")
	// ErrWeight means the signers' weights do not reach the minimum of
	// the ACL's manifest entry, or the ACL has no such entry.
	ErrWeight = errors.New("manifest signers do not reach the minimum weight")
)

// Manifest is one signed release for one channel, OS and architecture.
type Manifest struct {
	// Name is the channel, e.g. "prod": loaders are configured with one.
	Name string
	// Serial orders the manifests of a channel, OS and architecture: a
	// loader never installs a serial lower than the one it installed.
	Serial uint64
	// OS and Arch are Go's GOOS and GOARCH.
	OS   string
	Arch string
	// Created and Expires bound when loaders install the manifest.
	Created time.Time
	Expires time.Time
	// Files are the binaries, at most one per role.
	Files []File
	// Signatures are armored detached OpenPGP signatures over Encoding.
	Signatures []string
}

// File is one binary of a manifest.
type File struct {
	// Role is RoleAgent or RoleLoader.
	Role string `json:"role"`
	// Version is what the binary prints for -version.
	Version string `json:"version"`
	// SHA256 is the lower-case hex SHA-256 of the binary.
	SHA256 string `json:"sha256"`
	// Size is the binary's size in bytes.
	Size int64 `json:"size"`
}

// wire is the JSON form, members in the order of the file form.
type wire struct {
	Name       string   `json:"name"`
	Serial     uint64   `json:"serial"`
	OS         string   `json:"os"`
	Arch       string   `json:"arch"`
	Created    string   `json:"created"`
	Expires    string   `json:"expires"`
	Files      []File   `json:"files"`
	Signatures []string `json:"signatures"`
}

// signed is what Encoding covers: every member but the signatures, in
// sorted order (encoding/json writes struct fields in their order).
type signed struct {
	Arch    string `json:"arch"`
	Created string `json:"created"`
	Expires string `json:"expires"`
	Files   []File `json:"files"`
	Name    string `json:"name"`
	OS      string `json:"os"`
	Serial  uint64 `json:"serial"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// knownOS and knownArch are the platforms a manifest may name: those the
// agent is built for.
var (
	knownOS   = []string{"darwin", "linux", "windows"}
	knownArch = []string{"amd64", "arm64"}
)

// String names the manifest in messages: "prod/linux/amd64 serial 7".
func (m *Manifest) String() string {
	return fmt.Sprintf("%s/%s/%s serial %d", m.Name, m.OS, m.Arch, m.Serial)
}

// Parse reads a manifest in its file form and validates it.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrInvalid, len(data), MaxSize)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	// Canonical refuses duplicate keys and keys equal under case folding
	// in every object, which strictjson checks against the struct.
	if _, err := action.Canonical(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var w wire
	if err := strictjson.Decode(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m := &Manifest{
		Name: w.Name, Serial: w.Serial, OS: w.OS, Arch: w.Arch,
		Files: w.Files, Signatures: w.Signatures,
	}
	var err error
	if m.Created, err = parseTime("created", w.Created); err != nil {
		return nil, err
	}
	if m.Expires, err = parseTime("expires", w.Expires); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseTime reads a time in TimeFormat exactly.
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil || t.Format(TimeFormat) != s {
		return time.Time{}, fmt.Errorf("%w: %s %q is not a UTC time in whole seconds such as %q",
			ErrInvalid, field, s, "2026-12-07T18:00:00Z")
	}
	return t, nil
}

// Validate checks every field against the package's rules.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(m.Name) {
		return bad("name %q is not 1 to 64 of a-z, 0-9, '.', '_', '-' starting with a letter or digit", m.Name)
	}
	if m.Serial == 0 {
		return bad("serial is 0 or missing")
	}
	if !slices.Contains(knownOS, m.OS) {
		return bad("os %q is not one of %s", m.OS, strings.Join(knownOS, ", "))
	}
	if !slices.Contains(knownArch, m.Arch) {
		return bad("arch %q is not one of %s", m.Arch, strings.Join(knownArch, ", "))
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"created", m.Created}, {"expires", m.Expires}} {
		if t.t.IsZero() || !t.t.Equal(t.t.Truncate(time.Second)) || t.t.Year() < 2000 || t.t.Year() > 9999 {
			return bad("%s %s is missing, not in whole seconds, or out of range", t.name, t.t)
		}
	}
	if !m.Expires.After(m.Created) {
		return bad("expires %s is not after created %s", m.Expires.UTC().Format(TimeFormat), m.Created.UTC().Format(TimeFormat))
	}
	if m.Expires.Sub(m.Created) > MaxValidity {
		return bad("valid for %s, longer than the limit of %s", m.Expires.Sub(m.Created), MaxValidity)
	}
	if len(m.Files) == 0 {
		return bad("no files")
	}
	if len(m.Files) > 2 {
		return bad("%d files, more than one per role (%s, %s)", len(m.Files), RoleAgent, RoleLoader)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if f.Role != RoleAgent && f.Role != RoleLoader {
			return bad("file %d: role %q is not %q or %q", i+1, f.Role, RoleAgent, RoleLoader)
		}
		if seen[f.Role] {
			return bad("file %d: role %q appears twice", i+1, f.Role)
		}
		seen[f.Role] = true
		if !versionRE.MatchString(f.Version) {
			return bad("file %s: version %q is not 1 to 64 of A-Z, a-z, 0-9, '.', '+', '_', '~', '-'", f.Role, f.Version)
		}
		if !sha256RE.MatchString(f.SHA256) {
			return bad("file %s: sha256 %q is not 64 lower-case hex digits", f.Role, f.SHA256)
		}
		if f.Size < 1 || f.Size > MaxFileSize {
			return bad("file %s: size %d is not between 1 and %d", f.Role, f.Size, MaxFileSize)
		}
	}
	if len(m.Signatures) > action.MaxSignatures {
		return bad("%d signatures, more than the limit of %d", len(m.Signatures), action.MaxSignatures)
	}
	for i, s := range m.Signatures {
		if len(s) > action.MaxSignatureLen {
			return bad("signature %d is %d bytes, more than the limit of %d", i+1, len(s), action.MaxSignatureLen)
		}
	}
	return nil
}

// File returns the file of a role, or false.
func (m *Manifest) File(role string) (File, bool) {
	for _, f := range m.Files {
		if f.Role == role {
			return f, true
		}
	}
	return File{}, false
}

// SHA256Bytes returns the file's digest as bytes; the file must validate.
func (f File) SHA256Bytes() []byte {
	b, _ := hex.DecodeString(f.SHA256)
	return b
}

// Encoding returns the bytes investigators sign: EncodingPrefix, then the
// JSON object of every member but the signatures, keys sorted, without
// whitespace. Two manifests that differ in any signed field have different
// encodings.
func (m *Manifest) Encoding() []byte {
	files := m.Files
	if files == nil {
		files = []File{}
	}
	b, err := json.Marshal(signed{
		Arch:    m.Arch,
		Created: m.Created.UTC().Format(TimeFormat),
		Expires: m.Expires.UTC().Format(TimeFormat),
		Files:   files,
		Name:    m.Name,
		OS:      m.OS,
		Serial:  m.Serial,
	})
	if err != nil {
		// Only strings, integers and slices of them: Marshal cannot fail.
		panic(fmt.Sprintf("manifest: encoding: %v", err))
	}
	return append([]byte(EncodingPrefix), b...)
}

// Marshal returns the file form, indented, ending in a newline.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	sigs := m.Signatures
	if sigs == nil {
		sigs = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(wire{
		Name: m.Name, Serial: m.Serial, OS: m.OS, Arch: m.Arch,
		Created: m.Created.UTC().Format(TimeFormat), Expires: m.Expires.UTC().Format(TimeFormat),
		Files: m.Files, Signatures: sigs,
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Sign appends s's signature over m.Encoding(). The manifest must validate;
// a key that signed it already is refused (sign.ErrAlreadySigned): one key
// counts once.
func Sign(m *Manifest, s sign.Signer) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if len(m.Signatures) >= action.MaxSignatures {
		return fmt.Errorf("signing manifest %s: %w: it already has %d signatures, the limit", m, ErrInvalid, len(m.Signatures))
	}
	sig, err := sign.SignData("manifest "+m.String(), m.Encoding(), m.Signatures, s)
	if err != nil {
		return err
	}
	m.Signatures = append(m.Signatures, sig)
	return nil
}

// VerifySignature checks one signature over m.Encoding() against k and
// returns the signer's primary-key fingerprint. Its errors wrap the sign
// package's (sign.ErrBadSignature, sign.ErrUnknownSigner).
func VerifySignature(m *Manifest, k *sign.Keyring, sig string) (string, error) {
	return sign.Verify(k, m.Encoding(), sig)
}

// Verify decides whether a loader with keyring k and ACL a may install m at
// time now. The manifest must validate and be valid at now (Created minus
// MaxClockSkew to Expires). Every signature must be well formed and, when
// its key is in k, verify: a signature by a key k does not hold is ignored
// (it carries no weight; the server's keyring may know investigators the
// loader does not), a bad one refuses the manifest. The distinct signers'
// weights in a's ACLEntry must reach its minimum weight. Verify returns the
// signers' fingerprints, sorted.
func Verify(m *Manifest, k *sign.Keyring, a acl.ACL, now time.Time) ([]string, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if now.Before(m.Created.Add(-MaxClockSkew)) {
		return nil, fmt.Errorf("%w: manifest %s was created at %s, in the future", ErrNotYetValid, m, m.Created.Format(TimeFormat))
	}
	if now.After(m.Expires) {
		return nil, fmt.Errorf("%w: manifest %s expired at %s", ErrExpired, m, m.Expires.Format(TimeFormat))
	}
	if len(m.Signatures) == 0 {
		return nil, fmt.Errorf("manifest %s: %w", m, sign.ErrNoSignature)
	}
	enc := m.Encoding()
	var fps []string
	unknown := 0
	for i, s := range m.Signatures {
		fp, err := sign.Verify(k, enc, s)
		if errors.Is(err, sign.ErrUnknownSigner) {
			unknown++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s: signature %d of %d: %w", m, i+1, len(m.Signatures), err)
		}
		if !slices.Contains(fps, fp) {
			fps = append(fps, fp)
		}
	}
	slices.Sort(fps)
	p, ok := a[ACLEntry]
	if !ok {
		return nil, fmt.Errorf("%w: manifest %s: the ACL has no %q entry, so no manifest is installed", ErrWeight, m, ACLEntry)
	}
	if err := (acl.ACL{ACLEntry: p}).Authorize(ACLEntry, fps); err != nil {
		if unknown > 0 {
			return nil, fmt.Errorf("%w: manifest %s: %w (%d signatures by keys not in the keyring were ignored)", ErrWeight, m, err, unknown)
		}
		return nil, fmt.Errorf("%w: manifest %s: %w", ErrWeight, m, err)
	}
	return fps, nil
}
