package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// seedCommandLines are the module command lines of the seed documents
// (SEED-COMMANDS.md), as written there; TestSeedCommandLines in
// internal/e2e runs them against a real server and agent.
var seedCommandLines = []string{
	`mig file -path / -name "^\.boto$" -content "abcdef123456"`,
	`mig file -e 20s -path /usr -path /bin -path /sbin -path /tmp -path /opt -md5 eefc66a1e978dc9d825f28702106d4d5 -md5 efa23860086c5d12d3e6b918073c717f -md5 f3c5c20f5c45fc401484caf72753d778 -md5 fad8f37c9bd5420f49cfd5960a60fa24 -md5 fb3495715764cdaa547f2b040c0a9b1f -matchany -maxdepth 2`,
	`mig file -matchany -path /sys/devices/ -name "^uevent$" -content "PRODUCT=20a0/4107"`,
	`mig netstat -nm 8c:70:5a:c8:be:50`,
	`mig ping -t "name LIKE '%sc13%'" -show notfound -d 10.22.75.57 -p icmp`,
	`mig file -path /proc -name "^cmdline$" -maxdepth 2 -content "[e]lasticsearch"`,
}

// documentedModules are the modules whose command lines the README and
// docs/MODULES.md must show at least once.
var documentedModules = []string{"file", "netstat", "ping", "memory", "pkg", "scribe", "timedrift", "sshkey"}

// TestDocumentedCommandLines runs every module command line of the seed
// documents, the README and docs/*.md as written, module flags mixed with
// mig's global flags, and checks that each launches one signed action
// whose one operation an agent parses, or, with "-t local", runs in place.
func TestDocumentedCommandLines(t *testing.T) {
	lines := map[string]string{} // command line -> where it is written
	for i, l := range seedCommandLines {
		lines[l] = fmt.Sprintf("SEED-COMMANDS.md command line %d", i+1)
	}
	docs, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append([]string{filepath.Join("..", "..", "README.md")}, docs...) {
		for l, where := range moduleCommandLines(t, doc) {
			if _, dup := lines[l]; !dup {
				lines[l] = where
			}
		}
	}
	shown := map[string]bool{}
	for l := range lines {
		words, err := shellWords(l)
		if err != nil {
			t.Fatalf("%s: %q: %v", lines[l], l, err)
		}
		shown[words[1]] = true
	}
	for _, m := range documentedModules {
		if !shown[m] {
			t.Errorf("no command line of mig %s found in the README or docs/*.md", m)
		}
	}
	if len(lines) < 30 {
		t.Errorf("found %d module command lines, want at least 30: is the extraction broken?", len(lines))
	}

	// Each line launches its action, as written, on a fake API server
	// with one agent that finds nothing.
	var launched *action.Action
	f, srv := newFakeAPI(t, 1, func(i int, a *action.Action) action.Command {
		launched = a
		return action.Command{AgentID: "host0", AgentName: "host0", Status: action.CmdSuccess,
			Results: []action.Result{{Success: true}}}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), []byte(notFoundPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // "-path policy.json"
	// The configuration comes from the environment, as the lines do not
	// name one (and "mig ping" has its own -c, the count).
	t.Setenv("MIG_CONFIG", writeConfig(t, srv, 0))
	for l, where := range lines {
		t.Run(l, func(t *testing.T) {
			words, err := shellWords(l)
			if err != nil {
				t.Fatal(err)
			}
			args := fillPlaceholders(words[1:])
			name := args[0]
			f.mu.Lock()
			launched = nil
			f.mu.Unlock()
			code, _, stderr := run(t, args...)
			if code != ExitOK {
				t.Fatalf("%s: mig %q: exit code %d, stderr %q", where, args, code, stderr)
			}
			f.mu.Lock()
			a := launched
			f.mu.Unlock()
			if slices.Contains(args, TargetLocal) {
				if a != nil {
					t.Errorf("%s: mig %q launched action %d, want it run in place", where, args, a.ID)
				}
				return
			}
			if a == nil {
				t.Fatalf("%s: mig %q launched nothing (stderr %q)", where, args, stderr)
			}
			if len(a.Operations) != 1 || a.Operations[0].Module != name {
				t.Fatalf("%s: launched operations %+v, want one %s operation", where, a.Operations, name)
			}
			if _, _, err := module.Parse(name, a.Operations[0].Parameters); err != nil {
				t.Errorf("%s: an agent refuses the parameters %s: %v", where, a.Operations[0].Parameters, err)
			}
		})
	}
}

// moduleCommandLines returns the module command lines written in the
// Markdown file path: lines of code blocks and `code` spans that start
// with "mig <module> -", comments cut off.
func moduleCommandLines(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := map[string]string{}
	add := func(cmd string, line int) {
		words, err := shellWords(cmd)
		if err != nil || len(words) < 3 || words[0] != "mig" || !strings.HasPrefix(words[2], "-") {
			return // prose, a verb ("mig scribe convert"), or no flags
		}
		if _, ok := module.Lookup(words[1]); !ok {
			return
		}
		found[strings.TrimSpace(cmd)] = fmt.Sprintf("%s:%d", filepath.Base(path), line)
	}
	span := regexp.MustCompile("`(mig [^`]+)`")
	inCode := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			add(l, n)
			continue
		}
		for _, m := range span.FindAllStringSubmatch(l, -1) {
			add(m[1], n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}

// placeholder is how the docs write a value to fill in: <64 hex>.
var placeholder = regexp.MustCompile(`^<(\d+) hex>$`)

// placeholderLen returns the length of the placeholder that s starts
// with, or 0.
func placeholderLen(s string) int {
	end := strings.IndexByte(s, '>')
	if end < 0 || !placeholder.MatchString(s[:end+1]) {
		return 0
	}
	return end + 1
}

// fillPlaceholders replaces each <N hex> word with N hexadecimal digits.
func fillPlaceholders(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if m := placeholder.FindStringSubmatch(a); m != nil {
			n, _ := strconv.Atoi(m[1])
			out[i] = strings.Repeat("a", n)
		}
	}
	return out
}

// shellWords splits a command line as a POSIX shell does, for the quoting
// the docs use: '...', "..." (where \ escapes only $ ` " \), \ outside
// quotes, and a # that starts a word begins a comment. A placeholder
// <N hex> is one word.
func shellWords(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words, in = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '#' && !in:
			i = len(line)
		case c == '<' && !in && placeholderLen(line[i:]) > 0:
			n := placeholderLen(line[i:])
			words = append(words, line[i:i+n])
			i += n - 1
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' at %d", i)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i, in = i+1+end, true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("$`\"\\", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated \" in %q", line)
			}
			in = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{`mig file -path / -name "^\.boto$" -content "abcdef123456"`, []string{"mig", "file", "-path", "/", "-name", `^\.boto$`, "-content", "abcdef123456"}},
		{`mig ping -t "name LIKE '%sc13%'" -d 10.0.0.1   # comment`, []string{"mig", "ping", "-t", "name LIKE '%sc13%'", "-d", "10.0.0.1"}},
		{`mig file -name '^passwd$' -x a\ b -y "q\"q" -z "\d"`, []string{"mig", "file", "-name", "^passwd$", "-x", "a b", "-y", `q"q`, "-z", `\d`}},
		{`mig file -path /usr/bin -sha256 <64 hex> -sha3 <56 hex>`, []string{"mig", "file", "-path", "/usr/bin", "-sha256", "<64 hex>", "-sha3", "<56 hex>"}},
		{`mig file -size '>1m' a#b`, []string{"mig", "file", "-size", ">1m", "a#b"}},
	} {
		got, err := shellWords(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`mig file -name 'x`, `mig file -name "x`} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q): want an error", bad)
		}
	}
}
