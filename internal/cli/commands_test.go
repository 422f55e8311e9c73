package cli

import (
	"strings"
	"testing"
)

// TestCommandTable checks the table of subcommands: every entry runs one
// way, names are unique, "mig help" lists every command and verb, and each
// answers -h with its synopsis and a stray argument or unknown verb with a
// usage error naming it.
func TestCommandTable(t *testing.T) {
	_, help, _ := run(t, "help")
	var walk func(path string, table []*command)
	walk = func(path string, table []*command) {
		seen := map[string]bool{}
		for _, c := range table {
			p := path + " " + c.name
			if seen[c.name] {
				t.Errorf("%s is in the table twice", p)
			}
			seen[c.name] = true
			args := strings.Fields(p)[1:]
			if c.verbs != nil {
				if c.run != nil && c.flags != nil {
					t.Errorf("%s: want at most one of run and flags", p)
				}
				if line := strings.TrimSpace(strings.TrimPrefix(p, "mig ") + " " + c.args); c.runs() && !strings.Contains(help, "  "+line+"\n") {
					t.Errorf("mig help does not list %q:\n%s", line, help)
				}
				if c.moduleVerbs {
					// mig scribe -h is the module's help, which lists its verbs.
					if code, stdout, _ := run(t, append(args, "-h")...); code != ExitOK || !strings.Contains(stdout, "verbs:\n") {
						t.Errorf("%s -h: exit %d, %q; want the module's help listing its verbs", p, code, stdout)
					}
					walk(p, c.verbs)
					continue
				}
				if code, _, stderr := run(t, append(args, "nosuchverb")...); code != ExitUsage || !strings.Contains(stderr, `unknown verb "nosuchverb"`) {
					t.Errorf("%s nosuchverb: exit %d, %q; want a usage error naming the verb", p, code, stderr)
				}
				if code, stdout, _ := run(t, append(args, "-h")...); code != ExitOK || !strings.Contains(stdout, c.synopsis(p)) {
					t.Errorf("%s -h: exit %d, %q; want the usage %q", p, code, stdout, c.synopsis(p))
				}
				walk(p, c.verbs)
				continue
			}
			if (c.run == nil) == (c.flags == nil) {
				t.Errorf("%s: want exactly one of run and flags", p)
			}
			line := strings.TrimSpace(strings.TrimPrefix(p, "mig ") + " " + c.args)
			if !strings.Contains(help, "  "+line+"\n") || !strings.Contains(help, c.summary) {
				t.Errorf("mig help does not list %q with its summary %q:\n%s", line, c.summary, help)
			}
			if c.name == "help" {
				continue
			}
			if code, stdout, _ := run(t, append(args, "-h")...); code != ExitOK || !strings.HasPrefix(stdout, "usage: "+c.synopsis(p)+"\n") {
				t.Errorf("%s -h: exit %d, %q; want the usage %q", p, code, stdout, c.synopsis(p))
			}
			if !c.positional {
				if code, _, stderr := run(t, append(args, "stray")...); code != ExitUsage || !strings.Contains(stderr, `unexpected argument "stray"`) {
					t.Errorf("%s stray: exit %d, %q; want a usage error naming the argument", p, code, stderr)
				}
			}
		}
	}
	walk("mig", commands)
}
