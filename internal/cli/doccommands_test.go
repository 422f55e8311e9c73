package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

// TestDocumentedCommandLines parses every module command line of the seed
// documents, the README and docs/*.md with the module's flags and mig's
// global flags, as "mig" does, and checks that each builds an action whose
// one operation an agent parses: "-p" prints it signed, without a server;
// a line with "-t local" runs in place.
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

	cfg := writeConfig(t, untouchable(t), 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), []byte(seedPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // "-path policy.json"
	for l, where := range lines {
		t.Run(l, func(t *testing.T) {
			words, err := shellWords(l)
			if err != nil {
				t.Fatal(err)
			}
			args := fillPlaceholders(words[1:])
			name := args[0]
			local := false
			for i := range args[:len(args)-1] {
				local = local || args[i] == "-t" && args[i+1] == TargetLocal
			}
			if local {
				code, _, stderr := run(t, args...)
				if code != ExitOK {
					t.Fatalf("%s: mig %q: exit code %d, stderr %q", where, args, code, stderr)
				}
				return
			}
			code, stdout, stderr := run(t, append(args, "-c", cfg, "-p")...)
			if code != ExitOK {
				t.Fatalf("%s: mig %q: exit code %d, stderr %q", where, args, code, stderr)
			}
			a, err := action.ParseAction([]byte(stdout))
			if err != nil {
				t.Fatalf("%s: mig %q -p printed %q: %v", where, args, stdout, err)
			}
			if len(a.Operations) != 1 || a.Operations[0].Module != name {
				t.Fatalf("%s: operations %+v, want one %s operation", where, a.Operations, name)
			}
			if _, _, err := module.Parse(name, a.Operations[0].Parameters); err != nil {
				t.Errorf("%s: an agent refuses the parameters %s: %v", where, a.Operations[0].Parameters, err)
			}
		})
	}
}

// seedPolicy is the libnss3 policy of SEED-COMMANDS.md.
const seedPolicy = `{
  "objects": [
    { "object": "libnss3-package", "package": { "name": "libnss3:amd64" } }
  ],
  "tests": [
    {
      "test": "libnss3 test",
      "object": "libnss3-package",
      "evr": { "operation": "<", "value": "2:3.19.2" }
    }
  ]
}`

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
