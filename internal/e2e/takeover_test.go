package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The takeover suite is every test in this package that plays an attacker
// against the real binaries: a compromised server, store or relay, an
// enrolled malicious agent, a hostile client of the API. Each attack
// registers itself with attack and ends with refused (the platform said no
// and the test's checks passed) or executed (the platform did what the
// attacker wanted; this fails the test). An attack whose test failed, or
// that reached no verdict, counts as executed: a refusal is counted only
// when it was proven. TestMain prints the figure and, when
// MIG_TAKEOVER_REPORT names a file, writes it there for CI.

// attackClasses are the classes an attack may name, so that the figure's
// lines are stable and a typo is caught.
var attackClasses = []string{
	"forged-action",       // unsigned, tampered, expired, replayed, misaddressed, under-weighted actions from a compromised server
	"forged-encoding",     // malformed, oversized, wrong-version and case-folded messages through the relay
	"replay-journal",      // replays after the agent's journal or state dir is lost or edited
	"agent-env",           // the agent's environment and state dir in an attacker's hands
	"privacy",             // modules returning raw data past the privacy rule
	"api-auth",            // API keys, tokens and permissions
	"api-limiter",         // the API's failure limiter and X-Forwarded-For spoofing
	"api-flood",           // connection floods and slow clients against the API
	"relay-flood",         // connection floods, slow clients, garbage and oversized messages against the embedded relay
	"relay-intruder",      // an enrolled agent's credentials used for another agent's subjects, wrong passwords
	"malicious-agent",     // an enrolled agent sending results it should not
	"target-differential", // the server's and the agent's evaluation of a target disagree
	"audit",               // audit log access and tampering
	"rabbitmq+postgresql", // forged actions against the RabbitMQ relay and PostgreSQL store
	"signed-results",      // results forged by the server or store
	"investigator-token",  // investigator tokens replayed
	"file-modes",          // secrets readable by others
}

// takeover is the suite's tally, shared by all tests of the package.
var takeover struct {
	mu      sync.Mutex
	attacks []*attackRun
}

// attackRun is one attack of the suite.
type attackRun struct {
	t           *testing.T
	class, name string
	verdict     string // "", "refused" or "executed"
	counted     string // the final verdict, set when the test ends; "" if skipped
}

// attack registers an attack of class on t's behalf; the test must end it
// with refused or executed.
func attack(t *testing.T, class, name string) *attackRun {
	t.Helper()
	if !slices.Contains(attackClasses, class) {
		t.Fatalf("attack %q: unknown class %q (add it to attackClasses)", name, class)
	}
	a := &attackRun{t: t, class: class, name: name}
	takeover.mu.Lock()
	takeover.attacks = append(takeover.attacks, a)
	takeover.mu.Unlock()
	t.Cleanup(func() {
		takeover.mu.Lock()
		defer takeover.mu.Unlock()
		switch {
		case t.Skipped() && a.verdict == "":
			a.counted = "" // not run: not counted
		case a.verdict == "refused" && !t.Failed():
			a.counted = "refused"
		default:
			if a.verdict == "" && !t.Failed() {
				t.Errorf("attack %s/%s ended without a verdict", class, name)
			}
			a.counted = "executed"
		}
	})
	return a
}

// refused records that the platform refused the attack. It counts only if
// the test passes.
func (a *attackRun) refused() {
	takeover.mu.Lock()
	defer takeover.mu.Unlock()
	if a.verdict == "" {
		a.verdict = "refused"
	}
}

// executed records that the attack succeeded, and fails the test with the
// message format and args make.
func (a *attackRun) executed(format string, args ...any) {
	a.t.Helper()
	takeover.mu.Lock()
	a.verdict = "executed"
	takeover.mu.Unlock()
	a.t.Errorf("attack %s/%s executed: %s", a.class, a.name, fmt.Sprintf(format, args...))
}

// takeoverReport is the suite's report: the figure line, one line per
// class, then one line per attack that executed.
func takeoverReport() string {
	takeover.mu.Lock()
	defer takeover.mu.Unlock()
	type tally struct{ attacks, refused, executed int }
	var total tally
	per := map[string]*tally{}
	var bad []string
	for _, a := range takeover.attacks {
		if a.counted == "" {
			continue
		}
		c := per[a.class]
		if c == nil {
			c = &tally{}
			per[a.class] = c
		}
		c.attacks++
		total.attacks++
		if a.counted == "refused" {
			c.refused++
			total.refused++
		} else {
			c.executed++
			total.executed++
			bad = append(bad, fmt.Sprintf("executed %s/%s (%s)", a.class, a.name, a.t.Name()))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "attacks=%d refused=%d executed=%d\n", total.attacks, total.refused, total.executed)
	for _, class := range attackClasses {
		if c := per[class]; c != nil {
			fmt.Fprintf(&b, "class %s attacks=%d refused=%d executed=%d\n", class, c.attacks, c.refused, c.executed)
		}
	}
	for _, l := range bad {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// reportTakeover prints the report to stdout and writes it to the file
// that $MIG_TAKEOVER_REPORT names, if any.
func reportTakeover() error {
	report := takeoverReport()
	fmt.Print("takeover suite: " + report)
	if path := os.Getenv("MIG_TAKEOVER_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			return fmt.Errorf("writing the takeover report: %w", err)
		}
	}
	return nil
}
