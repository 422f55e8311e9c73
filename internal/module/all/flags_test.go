package all_test

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/module"
)

// flagModules are the modules whose flags FuzzModuleFlags builds. scribe
// is left out: its -path names a file that the build reads, so fuzzing it
// would fuzz file names, and agentdestroy takes no flags.
var flagModules = []string{"file", "netstat", "ping", "memory", "pkg", "sshkey", "timedrift"}

// TestEveryModuleHasFlags checks that every production module is a
// module.Flagger: one whose SetFlags has another signature would silently
// lose its "mig <module>" flags.
func TestEveryModuleHasFlags(t *testing.T) {
	for _, name := range module.Names() {
		m, _ := module.Lookup(name)
		if _, ok := m.(module.Flagger); !ok {
			t.Errorf("module %s is not a module.Flagger: check the signature of its SetFlags", name)
		}
	}
	if len(module.Names()) < len(flagModules)+2 {
		t.Errorf("modules registered: %v, want every production module", module.Names())
	}
}

// FuzzModuleFlags builds each module's parameters from arbitrary command
// lines (args separated by newlines) and checks what "mig <module>" relies
// on: building never panics; it returns either parameters and a Runner or
// an error and neither; and the parameters it returns are what an agent
// parses, to a Runner of the same type, so the Runner that "-t local" runs
// is the one the agent would run.
func FuzzModuleFlags(f *testing.F) {
	seeds := []struct {
		mod  uint8
		args string
	}{
		{0, "-path\n/\n-name\n^\\.boto$\n-content\nabcdef123456"},
		{0, "-path\n/usr\n-md5\neefc66a1e978dc9d825f28702106d4d5\n-matchany\n-maxdepth\n2"},
		{0, "-path\n/etc\n-size\n>1m\n-mtime\n<2d\n-mode\n^-rw-rw\n-mismatch\ncontent\n-macroal\n-decompress\n-returnsha256"},
		{0, "-path\n/etc\n-matchall=false\n-matchlimit\n0"},
		{1, "-nm\n8c:70:5a:c8:be:50"},
		{1, "-ci\n10.0.0.0/8\n-namespaces\n-lp\n1080\n-lp\n70000"},
		{2, "-d\n10.22.75.57\n-p\nicmp"},
		{2, "-d\ndb.example.net\n-p\ntcp\n-dp\n5432\n-c\n5\n-timeout\n2s"},
		{2, "-d\nx\n-c\n0\n-timeout\n0.5"},
		{3, "-name\n^java$\n-lib\nlog4j\n-bytes\n4d5a9000\n-matchall\n-offset\n10"},
		{4, "-name\nssl\n-name\ncrypto\n-version\n^3\\.0\\."},
		{5, "-path\n/home\n-path\n/root\n-maxdepth\n4"},
		{6, "-drift\n10s\n-server\nntp1.example.net\n-server\nntp2.example.net:123\n-timeout\n2s"},
	}
	for _, s := range seeds {
		f.Add(s.mod, s.args)
	}
	f.Fuzz(func(t *testing.T, mod uint8, args string) {
		name := flagModules[int(mod)%len(flagModules)]
		m, ok := module.Lookup(name)
		if !ok {
			t.Fatalf("module %s is not registered", name)
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		build := module.SetFlags(m, fs)
		if err := fs.Parse(strings.Split(args, "\n")); err != nil {
			return
		}
		raw, r, err := build()
		if err != nil {
			if raw != nil || r != nil {
				t.Fatalf("mig %s %q: build() = %s, %v with error %v, want neither", name, args, raw, r, err)
			}
			return
		}
		if r == nil || raw == nil {
			t.Fatalf("mig %s %q: build() = %s, %v and no error, want parameters and a runner", name, args, raw, r)
		}
		_, agent, err := module.Parse(name, raw)
		if err != nil {
			t.Fatalf("mig %s %q built %s, which an agent refuses: %v", name, args, raw, err)
		}
		if reflect.TypeOf(agent) != reflect.TypeOf(r) {
			t.Fatalf("mig %s %q: build() runner is a %T, an agent's a %T", name, args, r, agent)
		}
	})
}
