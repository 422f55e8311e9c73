package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/cmdflag"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/sign"
)

// The verbs of "mig manifest" (manifestVerbs) make, sign and publish the
// manifests that mig-loader installs (docs/LOADER.md). A manifest is signed
// by several investigators, each with their own key: the first creates it
// (signing it), the others sign it on the server (mig manifest sign ID) or
// as a file passed around (-o, then sign -i, then publish -i). Every verb
// that signs first shows what it signs, and sign can check the binaries the
// signer reviewed against the manifest's hashes (-agent, -loader).

// DefaultManifestValidity is how long a manifest stays installable when
// -expire is not given: long enough for every loader to run many times,
// short enough that a withheld newer release is noticed (a freeze).
const DefaultManifestValidity = 30 * 24 * time.Hour

// versionProbeTimeout bounds "FILE -version" when create reads a
// binary's version itself.
const versionProbeTimeout = 10 * time.Second

// manifestVerbs are the verbs of "mig manifest".
var manifestVerbs = []*command{
	{name: "create", args: "-name NAME -agent FILE [-version V] [-loader FILE [-loader-version V]] [-os OS] [-arch ARCH] [-serial N] [-expire 720h] [-o FILE]",
		summary: "upload binaries and make a manifest signed by you: published at once, or written to -o for others to sign",
		help: "Upload the binaries, make a manifest of their SHA-256, size and version, and sign it.\n" +
			"Without -o it is published; loaders install it once enough investigators signed it\n" +
			"(mig manifest sign ID). With -o it is written to a file, not published, for others to\n" +
			"sign (mig manifest sign -i) before mig manifest publish -i. -version defaults to what\n" +
			"the binary prints for -version when it runs on this machine's OS and architecture;\n" +
			"-serial to one more than the highest serial published for the name, OS and architecture.",
		globals: serverGlobals, flags: manifestCreateFlags},
	{name: "sign", args: "ID | -i FILE [-o FILE] [-agent FILE] [-loader FILE]",
		summary: "add your signature to manifest ID on the server, or to a manifest file",
		help: "Show the manifest, check the binaries given with -agent and -loader against it (the\n" +
			"ones you reviewed), sign it, and send the signature to the server (ID) or write the\n" +
			"file back (-i, to -o if given).",
		globals: serverGlobals, positional: true, flags: manifestSignFlags},
	{name: "publish", args: "-i FILE", summary: "publish a signed manifest file (its binaries uploaded by create)",
		globals: serverGlobals, flags: manifestPublishFlags},
	{name: "list", args: "[-render text|json]", summary: "list the published manifests", globals: renderGlobals,
		run: (*runner).manifestList},
	{name: "show", args: "ID [-render text|json]", summary: "show a manifest, its files and signers", globals: renderGlobals,
		positional: true, run: (*runner).manifestShow},
	{name: "disable", args: "ID", summary: "stop serving a manifest to loaders (the previous active one is served)",
		globals: serverGlobals, positional: true, run: manifestStatusCmd("disable", client.ManifestDisabled)},
	{name: "enable", args: "ID", summary: "serve a disabled manifest again",
		globals: serverGlobals, positional: true, run: manifestStatusCmd("enable", client.ManifestActive)},
}

// manifestBinary is one file of create: the path, its role and version.
type manifestBinary struct {
	role, path, version string
}

// manifestCreateFlags are the flags of "mig manifest create", and its run.
func manifestCreateFlags(fs *flag.FlagSet) runFunc {
	name := fs.String("name", "", "the manifest's channel (`name`), e.g. prod: loaders are configured with one")
	agentPath := fs.String("agent", "", "the mig-agent binary (`file`)")
	agentVersion := fs.String("version", "", "the `version` the mig-agent binary prints for -version")
	loaderPath := fs.String("loader", "", "a mig-loader binary (`file`) to install too")
	loaderVersion := fs.String("loader-version", "", "the `version` the mig-loader binary prints for -version")
	goos := fs.String("os", runtime.GOOS, "the binaries' operating system (`GOOS`): linux, darwin or windows")
	goarch := fs.String("arch", runtime.GOARCH, "the binaries' architecture (`GOARCH`): amd64 or arm64")
	serial := fs.Uint64("serial", 0, "the manifest's `serial` (default one more than the highest published)")
	expire := fs.Duration("expire", DefaultManifestValidity, "loaders install the manifest for this `duration`")
	out := fs.String("o", "", "write the signed manifest to `file` instead of publishing it")
	return func(r *runner, g *globals, _ []string) error {
		if *name == "" || *agentPath == "" {
			return usagef("mig manifest create: -name and -agent are required")
		}
		if *expire <= 0 || *expire > manifest.MaxValidity {
			return usagef("mig manifest create: -expire %s is not between 1s and %s", *expire, manifest.MaxValidity)
		}
		if cmdflag.IsSet(fs, "serial") && *serial == 0 {
			return usagef("mig manifest create: -serial must be positive")
		}
		if *loaderPath == "" && *loaderVersion != "" {
			return usagef("mig manifest create: -loader-version without -loader")
		}
		bins := []manifestBinary{{manifest.RoleAgent, *agentPath, *agentVersion}}
		if *loaderPath != "" {
			bins = append(bins, manifestBinary{manifest.RoleLoader, *loaderPath, *loaderVersion})
		}
		now := r.now().UTC().Truncate(time.Second)
		m := &manifest.Manifest{Name: *name, OS: *goos, Arch: *goarch, Serial: *serial,
			Created: now, Expires: now.Add(*expire)}
		for i, b := range bins {
			f, err := describeBinary(r.ctx, b, *goos, *goarch)
			if err != nil {
				return err
			}
			bins[i].version = f.Version
			m.Files = append(m.Files, f)
		}
		if m.Serial == 0 {
			// Any valid serial, for Validate to check the rest before
			// anything is sent.
			m.Serial = 1
		}
		if err := m.Validate(); err != nil {
			return usagef("mig manifest create: %v", err)
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		if !cmdflag.IsSet(fs, "serial") {
			if m.Serial, err = nextSerial(r.ctx, c, m); err != nil {
				return err
			}
		}
		for i, f := range m.Files {
			up, err := c.UploadManifestFile(r.ctx, bins[i].path, f.SHA256)
			if err != nil {
				return err
			}
			fmt.Fprintf(r.stderr, "uploaded %s %s (%s, %d bytes)\n", f.Role, bins[i].path, up.SHA256, up.Size)
		}
		writeManifestSummary(r.stderr, m)
		if err := manifest.Sign(m, c.Signer()); err != nil {
			return fmt.Errorf("signing manifest %s: %w", m, err)
		}
		if *out != "" {
			if err := writeManifestFile(*out, m); err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "manifest %s signed by %s written to %s: not published\n", m, c.Signer().Fingerprint(), *out)
			return nil
		}
		mi, err := c.PublishManifest(r.ctx, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "manifest %d published: %s, signed by %s\n", mi.ID, m, strings.Join(mi.Signers, ", "))
		return nil
	}
}

// describeBinary reads b's SHA-256 and size, and its version from
// "FILE -version" when none was given and it runs here.
func describeBinary(ctx context.Context, b manifestBinary, goos, goarch string) (manifest.File, error) {
	f := manifest.File{Role: b.role, Version: b.version}
	fh, err := os.Open(b.path)
	if err != nil {
		return f, usagef("mig manifest create: %s: %v", b.role, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return f, err
	}
	if !st.Mode().IsRegular() {
		return f, usagef("mig manifest create: %s %s is not a regular file", b.role, b.path)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, manifest.MaxFileSize+1))
	if err != nil {
		return f, fmt.Errorf("reading %s: %w", b.path, err)
	}
	if n > manifest.MaxFileSize {
		return f, usagef("mig manifest create: %s %s is larger than %d MiB", b.role, b.path, manifest.MaxFileSize>>20)
	}
	f.SHA256, f.Size = hex.EncodeToString(h.Sum(nil)), n
	if f.Version != "" {
		return f, nil
	}
	flagName := "-version"
	if b.role == manifest.RoleLoader {
		flagName = "-loader-version"
	}
	if goos != runtime.GOOS || goarch != runtime.GOARCH {
		return f, usagef("mig manifest create: %s is for %s/%s, which cannot run here to print its version: give %s", b.path, goos, goarch, flagName)
	}
	vctx, cancel := context.WithTimeout(ctx, versionProbeTimeout)
	defer cancel()
	outb, err := exec.CommandContext(vctx, b.path, "-version").Output()
	if err != nil {
		return f, fmt.Errorf("mig manifest create: running %s -version to read its version (or give %s): %w", b.path, flagName, err)
	}
	f.Version = strings.TrimSpace(string(outb))
	return f, nil
}

// nextSerial is one more than the highest serial published for m's name,
// OS and architecture (disabled ones count: a loader that installed one
// refuses every lower serial).
func nextSerial(ctx context.Context, c *client.Client, m *manifest.Manifest) (uint64, error) {
	all, err := c.Manifests(ctx)
	if err != nil {
		return 0, err
	}
	next := uint64(1)
	for _, mi := range all {
		if mi.Name == m.Name && mi.OS == m.OS && mi.Arch == m.Arch && mi.Serial >= next {
			next = mi.Serial + 1
		}
	}
	return next, nil
}

// manifestSignFlags are the flags of "mig manifest sign", and its run.
func manifestSignFlags(fs *flag.FlagSet) runFunc {
	in := fs.String("i", "", "sign the manifest `file` instead of one on the server")
	out := fs.String("o", "", "with -i, write the signed manifest to `file` (default: -i itself)")
	agentPath := fs.String("agent", "", "check this mig-agent binary (`file`) against the manifest before signing")
	loaderPath := fs.String("loader", "", "check this mig-loader binary (`file`) against the manifest before signing")
	return func(r *runner, g *globals, pos []string) error {
		if (*in == "") == (len(pos) == 0) || len(pos) > 1 {
			return usagef("mig manifest sign: give one manifest ID or -i FILE")
		}
		if *out != "" && *in == "" {
			return usagef("mig manifest sign: -o goes with -i")
		}
		var id int64
		var m *manifest.Manifest
		var err error
		if *in != "" {
			if m, err = readManifestFile(*in); err != nil {
				return err
			}
		} else if id, err = parseManifestID("sign", pos[0]); err != nil {
			return err
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		if m == nil {
			mi, err := c.Manifest(r.ctx, id)
			if err != nil {
				return err
			}
			if m, err = mi.Manifest(); err != nil {
				return err
			}
		}
		for role, path := range map[string]string{manifest.RoleAgent: *agentPath, manifest.RoleLoader: *loaderPath} {
			if path != "" {
				if err := checkBinary(m, role, path); err != nil {
					return err
				}
			}
		}
		writeManifestSummary(r.stderr, m)
		if err := manifest.Sign(m, c.Signer()); err != nil {
			if errors.Is(err, sign.ErrAlreadySigned) {
				return usagef("mig manifest sign: %v", err)
			}
			return fmt.Errorf("signing manifest %s: %w", m, err)
		}
		if *in != "" {
			dst := *in
			if *out != "" {
				dst = *out
			}
			if err := writeManifestFile(dst, m); err != nil {
				return err
			}
			fmt.Fprintf(r.stdout, "manifest %s signed by %s (%d signatures) written to %s\n", m, c.Signer().Fingerprint(), len(m.Signatures), dst)
			return nil
		}
		mi, err := c.AddManifestSignature(r.ctx, id, m.Signatures[len(m.Signatures)-1])
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "manifest %d %s signed by %s\n", mi.ID, m, strings.Join(mi.Signers, ", "))
		return nil
	}
}

// checkBinary checks the file at path against m's file of role.
func checkBinary(m *manifest.Manifest, role, path string) error {
	f, ok := m.File(role)
	if !ok {
		return usagef("mig manifest sign: manifest %s has no %s file to check %s against", m, role, path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return usagef("mig manifest sign: %v", err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, manifest.MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 || n != f.Size {
		return fmt.Errorf("not signing manifest %s: %s is sha256 %s, %d bytes; the manifest's %s is sha256 %s, %d bytes",
			m, path, sum, n, role, f.SHA256, f.Size)
	}
	return nil
}

// manifestPublishFlags are the flags of "mig manifest publish -i FILE",
// and its run.
func manifestPublishFlags(fs *flag.FlagSet) runFunc {
	in := fs.String("i", "", "the signed manifest `file`")
	return func(r *runner, g *globals, _ []string) error {
		if *in == "" {
			return usagef("mig manifest publish: -i FILE is required")
		}
		m, err := readManifestFile(*in)
		if err != nil {
			return err
		}
		if len(m.Signatures) == 0 {
			return usagef("mig manifest publish: %s is not signed: mig manifest sign -i %s first", *in, *in)
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		mi, err := c.PublishManifest(r.ctx, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "manifest %d published: %s, signed by %s\n", mi.ID, m, strings.Join(mi.Signers, ", "))
		return nil
	}
}

// manifestList runs "mig manifest list".
func (r *runner) manifestList(g *globals, _ []string) error {
	c, err := r.client(g)
	if err != nil {
		return err
	}
	all, err := c.Manifests(r.ctx)
	if err != nil {
		return err
	}
	if g.render == RenderJSON {
		for _, mi := range all {
			if err := writeJSONLine(r.stdout, mi, "manifest "+strconv.FormatInt(mi.ID, 10)); err != nil {
				return err
			}
		}
		return nil
	}
	var rows [][]string
	for _, mi := range all {
		var files []string
		for _, f := range mi.Files {
			files = append(files, f.Role+" "+f.Version)
		}
		rows = append(rows, []string{strconv.FormatInt(mi.ID, 10), mi.Name, mi.OS + "/" + mi.Arch, strconv.FormatUint(mi.Serial, 10),
			mi.Status, strings.Join(files, ", "), strconv.Itoa(len(mi.Signers)), formatTime(mi.Expires)})
	}
	return writeTable(r.stdout, []string{"ID", "NAME", "PLATFORM", "SERIAL", "STATUS", "FILES", "SIGNERS", "EXPIRES"}, rows)
}

// manifestShow runs "mig manifest show ID".
func (r *runner) manifestShow(g *globals, pos []string) error {
	if len(pos) != 1 {
		return usagef("mig manifest show: give one manifest ID")
	}
	id, err := parseManifestID("show", pos[0])
	if err != nil {
		return err
	}
	c, err := r.client(g)
	if err != nil {
		return err
	}
	mi, err := c.Manifest(r.ctx, id)
	if err != nil {
		return err
	}
	if g.render == RenderJSON {
		return writeJSONLine(r.stdout, mi, "manifest "+pos[0])
	}
	m, err := mi.Manifest()
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "manifest %d: %s, %s\npublished %s by %s\n", mi.ID, m, mi.Status, formatTime(mi.PublishedAt), mi.PublishedBy)
	writeManifestSummary(r.stdout, m)
	fmt.Fprintf(r.stdout, "signatures: %d, by keys the server knows: %s\n", len(m.Signatures), strings.Join(mi.Signers, ", "))
	return nil
}

// manifestStatusCmd runs "mig manifest disable|enable ID".
func manifestStatusCmd(verb, status string) runFunc {
	return func(r *runner, g *globals, pos []string) error {
		if len(pos) != 1 {
			return usagef("mig manifest %s: give one manifest ID", verb)
		}
		id, err := parseManifestID(verb, pos[0])
		if err != nil {
			return err
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		if err := c.SetManifestStatus(r.ctx, id, status); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "manifest %d %s\n", id, status)
		return nil
	}
}

func parseManifestID(verb, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("mig manifest %s: manifest ID %q is not a positive number", verb, s)
	}
	return id, nil
}

// writeManifestSummary writes what a signer vouches for.
func writeManifestSummary(w io.Writer, m *manifest.Manifest) {
	fmt.Fprintf(w, "manifest %s, valid %s to %s\n", m, m.Created.Format(manifest.TimeFormat), m.Expires.Format(manifest.TimeFormat))
	for _, f := range m.Files {
		fmt.Fprintf(w, "  %-10s %-20s sha256 %s  %d bytes\n", f.Role, f.Version, f.SHA256, f.Size)
	}
}

// readManifestFile reads and parses a manifest file.
func readManifestFile(path string) (*manifest.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, manifest.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	return m, nil
}

// writeManifestFile writes m's file form atomically (a manifest is public).
func writeManifestFile(path string, m *manifest.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("writing manifest %s: %w", m, err)
	}
	return nil
}
