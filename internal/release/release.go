// Package release builds MIG's Linux packages: it compiles mig-agent,
// mig-loader and mig-server (static, CGO_ENABLED=0, the version set with
// -ldflags -X), then writes mig-agent_<v>_<arch>.deb/.rpm (the agent, the
// loader, their systemd units and the loader's timer) and
// mig-server_<v>_<arch>.deb/.rpm with nfpm used as a library. The units and
// the package scripts are the files of the packaging directory (package
// packaging); docs/PACKAGING.md says what each package installs and does.
//
// "go run ./cmd/mig-release -o dist/" runs it from a checkout of the module.
package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/migplatform/mig/packaging"
)

// ModulePath is the module whose commands are built.
const ModulePath = "github.com/migplatform/mig"

// VersionVariable is the variable -ldflags -X sets to the version.
const VersionVariable = ModulePath + "/internal/version.Version"

// Arches are the architectures packages are built for (GOARCH names).
var Arches = []string{"amd64", "arm64"}

// Formats are the package formats written, in order.
var Formats = []string{"deb", "rpm"}

// ErrUsage is wrapped by every error about a bad option.
var ErrUsage = errors.New("bad release option")

var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$`)

// ValidVersion checks that v can be a version: 1 to 64 letters, digits and
// ".+~_-", starting with a letter or digit (it is passed to the linker and
// printed by "-version", so it may not hold spaces or quotes).
func ValidVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("%w: version %q: want 1 to 64 letters, digits and .+~_-, starting with a letter or digit", ErrUsage, v)
	}
	return nil
}

var describeRE = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)(-dirty)?$`)

// PackageVersion turns a binary version into a version dpkg and rpm order
// rightly: a leading "v" is dropped; "git describe" output
// ("1.2.0-5-gabc123", five commits after v1.2.0) becomes "1.2.0+5.gabc123",
// after 1.2.0; any other "-" (a pre-release, "1.3.0-rc1") becomes "~",
// before the release; a version that does not start with a digit ("dev", a
// commit hash) becomes "0~" followed by it, before every release.
func PackageVersion(v string) string {
	dirty := ""
	v = strings.TrimPrefix(v, "v")
	if m := describeRE.FindStringSubmatch(v); m != nil {
		if m[4] != "" {
			dirty = ".dirty"
		}
		v = m[1] + "+" + m[2] + ".g" + m[3]
	} else if s, ok := strings.CutSuffix(v, "-dirty"); ok {
		v, dirty = s, ".dirty"
	}
	v = strings.NewReplacer("-", "~", "_", ".").Replace(v) + dirty
	if v == "" || v[0] < '0' || v[0] > '9' {
		v = "0~" + v
	}
	return v
}

// Options say what Build builds.
type Options struct {
	// Dir is where the packages are written (created if needed).
	Dir string
	// Version is the version of the binaries (what "-version" prints);
	// empty means "git describe --tags --always --dirty" of Source, or "dev".
	Version string
	// Arches are GOARCH names; empty means Arches.
	Arches []string
	// Source is the module's root directory; empty means the module of the
	// current directory.
	Source string
	// Go is the go command; empty means "go" from PATH.
	Go string
	// Log receives one line per step; nil means none.
	Log io.Writer
}

// Binaries are the compiled commands for one architecture.
type Binaries struct {
	Arch    string
	Version string
	Agent   string // path of mig-agent
	Loader  string // path of mig-loader; empty when the module has no cmd/mig-loader
	Server  string // path of mig-server
	// Doc is the path of docs/PACKAGING.md, installed with each package.
	Doc string
	// MTime is the time given to every file in the packages (the commit's
	// time, or SOURCE_DATE_EPOCH), so that a rebuild gives the same files.
	MTime time.Time
}

// Build compiles the binaries for each architecture into a temporary
// directory and writes the packages into o.Dir. It returns their paths.
func Build(ctx context.Context, o Options) ([]string, error) {
	o, err := o.withDefaults(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: output directory: %w", err)
	}
	tmp, err := os.MkdirTemp("", "mig-release-")
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer os.RemoveAll(tmp)
	var out []string
	for _, arch := range o.Arches {
		bins, err := BuildBinaries(ctx, o, arch, filepath.Join(tmp, arch))
		if err != nil {
			return out, err
		}
		paths, err := Package(bins, o.Dir)
		out = append(out, paths...)
		if err != nil {
			return out, err
		}
		for _, p := range paths {
			o.logf("wrote %s", p)
		}
	}
	return out, nil
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "mig-release: "+format+"\n", args...)
	}
}

func (o Options) withDefaults(ctx context.Context) (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("%w: no output directory", ErrUsage)
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Source == "" {
		out, err := exec.CommandContext(ctx, o.Go, "env", "GOMOD").Output()
		if err != nil {
			return o, fmt.Errorf("release: go env GOMOD: %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return o, fmt.Errorf("%w: the current directory is not in a Go module: run mig-release from a checkout of %s", ErrUsage, ModulePath)
		}
		o.Source = filepath.Dir(gomod)
	}
	mod, err := os.ReadFile(filepath.Join(o.Source, "go.mod"))
	if err != nil {
		return o, fmt.Errorf("%w: source %s: %v", ErrUsage, o.Source, err)
	}
	if first, _, _ := strings.Cut(string(mod), "\n"); strings.TrimSpace(first) != "module "+ModulePath {
		return o, fmt.Errorf("%w: source %s is not the module %s", ErrUsage, o.Source, ModulePath)
	}
	if len(o.Arches) == 0 {
		o.Arches = Arches
	}
	for _, a := range o.Arches {
		if !validArch(a) {
			return o, fmt.Errorf("%w: architecture %q: want one of %s", ErrUsage, a, strings.Join(Arches, ", "))
		}
	}
	if o.Version == "" {
		o.Version = gitDescribe(ctx, o.Source)
	}
	if err := ValidVersion(o.Version); err != nil {
		return o, err
	}
	return o, nil
}

func validArch(a string) bool {
	for _, b := range Arches {
		if a == b {
			return true
		}
	}
	return false
}

// gitDescribe returns "git describe --tags --always --dirty" in dir, or
// "dev" when that fails (no git, not a repository).
func gitDescribe(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = dir
	out, err := cmd.Output()
	v := strings.TrimSpace(string(out))
	if err != nil || ValidVersion(v) != nil {
		return "dev"
	}
	return v
}

// sourceTime returns SOURCE_DATE_EPOCH if set, else the time of dir's last
// commit, else now.
func sourceTime(ctx context.Context, dir string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: SOURCE_DATE_EPOCH %q is not a number of seconds", ErrUsage, s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = dir
	if out, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Now().UTC().Truncate(time.Second), nil
}

// BuildBinaries compiles mig-agent, mig-server and (when the module has
// cmd/mig-loader) mig-loader for linux/arch into dir, with CGO_ENABLED=0,
// -trimpath and the version set with -ldflags -X. Options must have been
// completed by Build, or give Source and Version.
func BuildBinaries(ctx context.Context, o Options, arch, dir string) (Binaries, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Source == "" || o.Version == "" {
		return Binaries{}, fmt.Errorf("%w: BuildBinaries needs Source and Version", ErrUsage)
	}
	if err := ValidVersion(o.Version); err != nil {
		return Binaries{}, err
	}
	if !validArch(arch) {
		return Binaries{}, fmt.Errorf("%w: architecture %q: want one of %s", ErrUsage, arch, strings.Join(Arches, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("release: %w", err)
	}
	mtime, err := sourceTime(ctx, o.Source)
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Arch: arch, Version: o.Version, Doc: filepath.Join(o.Source, "docs", "PACKAGING.md"), MTime: mtime}
	if _, err := os.Stat(b.Doc); err != nil {
		return Binaries{}, fmt.Errorf("release: %w", err)
	}
	cmds := []struct {
		name string
		dst  *string
	}{{"mig-agent", &b.Agent}, {"mig-loader", &b.Loader}, {"mig-server", &b.Server}}
	for _, c := range cmds {
		if c.name == "mig-loader" {
			if _, err := os.Stat(filepath.Join(o.Source, "cmd", c.name)); errors.Is(err, os.ErrNotExist) {
				o.logf("no cmd/mig-loader in %s: the mig-agent package is built without the loader", o.Source)
				continue
			}
		}
		out := filepath.Join(dir, c.name)
		o.logf("building %s %s for linux/%s", c.name, o.Version, arch)
		cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath",
			"-ldflags=-s -w -X "+VersionVariable+"="+o.Version,
			"-o", out, "./cmd/"+c.name)
		cmd.Dir = o.Source
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return Binaries{}, fmt.Errorf("release: go build %s for linux/%s: %v\n%s", c.name, arch, err, stderr.Bytes())
		}
		*c.dst = out
	}
	return b, nil
}

// Spec describes one package before it is written in a format.
type Spec struct {
	Name        string
	Summary     string
	Description string
	Contents    files.Contents
	Scripts     nfpm.Scripts
}

const (
	unitDir    = "/usr/lib/systemd/system"
	maintainer = "MIG developers <mig@migplatform.invalid>"
	homepage   = "https://github.com/migplatform/mig"
)

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
		FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode}}
}

func dirEntry(dst, owner, group string, mode os.FileMode) *files.Content {
	return &files.Content{Destination: dst, Type: files.TypeDir,
		FileInfo: &files.ContentFileInfo{Owner: owner, Group: group, Mode: mode}}
}

// Specs returns the packages built from b, with the packaging files (units,
// scripts) written into dir, where they must stay until the packages are
// written.
func Specs(b Binaries, dir string) ([]Spec, error) {
	write := func(name string, mode os.FileMode) (string, error) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("release: %w", err)
		}
		if err := os.WriteFile(p, packaging.File(name), mode); err != nil {
			return "", fmt.Errorf("release: %w", err)
		}
		return p, nil
	}
	paths := map[string]string{}
	for _, n := range []string{
		"systemd/mig-agent.service", "systemd/mig-loader.service", "systemd/mig-loader.timer", "systemd/mig-server.service",
	} {
		p, err := write(n, 0o644)
		if err != nil {
			return nil, err
		}
		paths[n] = p
	}
	for _, n := range []string{
		"agent-postinstall", "agent-preremove", "agent-postremove",
		"server-preinstall", "server-postinstall", "server-preremove", "server-postremove",
	} {
		p, err := write("scripts/"+n+".sh", 0o755)
		if err != nil {
			return nil, err
		}
		paths[n] = p
	}

	agent := Spec{
		Name:    "mig-agent",
		Summary: "MIG agent: answers investigators' signed actions on this host",
		Description: "The endpoint agent of MIG: it runs\n" +
			"only actions that investigators' OpenPGP signatures authorise, and\n" +
			"mig-loader keeps it current from signed manifests.",
		Contents: files.Contents{
			file(b.Agent, "/usr/sbin/mig-agent", 0o755),
			file(paths["systemd/mig-agent.service"], unitDir+"/mig-agent.service", 0o644),
			file(b.Doc, "/usr/share/doc/mig-agent/PACKAGING.md", 0o644),
			dirEntry("/etc/mig", "root", "root", 0o750),
			dirEntry("/var/lib/mig-agent", "root", "root", 0o700),
		},
		Scripts: nfpm.Scripts{
			PostInstall: paths["agent-postinstall"],
			PreRemove:   paths["agent-preremove"],
			PostRemove:  paths["agent-postremove"],
		},
	}
	if b.Loader != "" {
		agent.Contents = append(agent.Contents,
			file(b.Loader, "/usr/sbin/mig-loader", 0o755),
			file(paths["systemd/mig-loader.service"], unitDir+"/mig-loader.service", 0o644),
			file(paths["systemd/mig-loader.timer"], unitDir+"/mig-loader.timer", 0o644),
			dirEntry("/var/lib/mig-loader", "root", "root", 0o700),
		)
	}
	server := Spec{
		Name:    "mig-server",
		Summary: "MIG server: API, scheduler and relay",
		Description: "The server of MIG: the investigators' API, the scheduler that\n" +
			"dispatches signed actions to agents, and the embedded relay.",
		Contents: files.Contents{
			file(b.Server, "/usr/bin/mig-server", 0o755),
			file(paths["systemd/mig-server.service"], unitDir+"/mig-server.service", 0o644),
			file(b.Doc, "/usr/share/doc/mig-server/PACKAGING.md", 0o644),
			dirEntry("/etc/mig-server", "root", "mig-server", 0o750),
			dirEntry("/var/lib/mig-server", "mig-server", "mig-server", 0o700),
		},
		Scripts: nfpm.Scripts{
			PreInstall:  paths["server-preinstall"],
			PostInstall: paths["server-postinstall"],
			PreRemove:   paths["server-preremove"],
			PostRemove:  paths["server-postremove"],
		},
	}
	return []Spec{agent, server}, nil
}

// FileName returns the name of a package: name_version_arch.format, with
// the binary version made a package version (PackageVersion) and arch a
// GOARCH name.
func FileName(name, version, arch, format string) string {
	return name + "_" + PackageVersion(version) + "_" + arch + "." + format
}

// Package writes every package of b in every format into outDir and returns
// their paths.
func Package(b Binaries, outDir string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "mig-packaging-")
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer os.RemoveAll(tmp)
	specs, err := Specs(b, tmp)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range specs {
		for _, format := range Formats {
			p := filepath.Join(outDir, FileName(s.Name, b.Version, b.Arch, format))
			if err := writePackage(s, b, format, p); err != nil {
				return out, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// info returns the nfpm description of s (a new one each time: packagers
// change it).
func (s Spec) info(b Binaries) *nfpm.Info {
	contents := make(files.Contents, len(s.Contents))
	for i, c := range s.Contents {
		cc := *c
		fi := *c.FileInfo
		fi.MTime = b.MTime
		cc.FileInfo = &fi
		contents[i] = &cc
	}
	return nfpm.WithDefaults(&nfpm.Info{
		Name:          s.Name,
		Arch:          b.Arch,
		Platform:      "linux",
		Version:       PackageVersion(b.Version),
		VersionSchema: "none",
		Release:       "1",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Vendor:        "MIG",
		Homepage:      homepage,
		Description:   s.Summary + "\n" + s.Description,
		MTime:         b.MTime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
			Scripts:  s.Scripts,
			RPM: nfpm.RPM{
				Summary:   s.Summary,
				Group:     "System Environment/Daemons",
				BuildHost: "mig-release",
			},
		},
	})
}

func writePackage(s Spec, b Binaries, format, path string) error {
	var p nfpm.Packager
	switch format {
	case "deb":
		p = deb.Default
	case "rpm":
		p = rpm.DefaultRPM
	default:
		return fmt.Errorf("%w: package format %q", ErrUsage, format)
	}
	var buf bytes.Buffer
	if err := p.Package(s.info(b), &buf); err != nil {
		return fmt.Errorf("release: %s %s: %w", format, s.Name, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("release: %w", err)
	}
	return nil
}
