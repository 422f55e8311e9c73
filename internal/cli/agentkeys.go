package cli

import (
	"crypto/ed25519"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/agentkeys"
	"github.com/migplatform/mig/internal/client"
)

// Verdicts of a result's signature, as -render json names them in
// "signature".
const (
	sigVerified    = "verified"    // signed by the agent's pinned key
	sigPinnedNow   = "pinned"      // signed; the key was pinned now, on first use
	sigUnpinned    = "unpinned"    // signed, but -pinfile has no key for the agent
	sigUnsigned    = "unsigned"    // no signature (an agent older than result signing)
	sigServerEnded = "server"      // expired or cancelled by the server: no agent result
	sigForged      = "FORGED"      // the signature does not verify over what the server shows
	sigKeyChanged  = "KEY CHANGED" // signed by another key than the agent's pin
)

// resultVerifier checks each result of an action against the agent keys
// pinned on this machine (package agentkeys).
type resultVerifier struct {
	errw     io.Writer
	pins     *agentkeys.Set
	path     string // the pin file
	tofu     bool   // pin unknown agents' keys (not with -pinfile)
	dirty    bool   // pins to save
	actionID uint64
	// actionHash is action.ActionHash of the action the server showed,
	// "" if it does not encode.
	actionHash string
	counts     map[string]int
	// beforeWarning, if set, is called before a warning is written.
	beforeWarning func()
	// quietUnsigned leaves unsigned and unpinned results out of the
	// warnings (they are counted in the summary).
	quietUnsigned bool
}

// newResultVerifier loads the pins: from pinFile when set (read only),
// otherwise from pinPath, to which first uses are added.
func newResultVerifier(errw io.Writer, pinFile string, a *action.Action) (*resultVerifier, error) {
	v := &resultVerifier{errw: errw, path: pinFile, actionID: a.ID, counts: map[string]int{}}
	if pinFile == "" {
		p, err := pinPath(errw)
		if err != nil {
			return nil, err
		}
		v.path, v.tofu = p, true
	} else if _, err := os.Stat(pinFile); err != nil {
		return nil, asUsage(fmt.Errorf("-pinfile: %w", err))
	}
	var err error
	if v.pins, err = agentkeys.Load(v.path); err != nil {
		return nil, err
	}
	if checked, err := a.Check(); err == nil {
		v.actionHash = action.ActionHash(checked.Encoding())
	}
	return v, nil
}

// check returns the verdict on one finished command, writing a warning for
// anything but a verified result.
func (v *resultVerifier) check(cmd action.Command) string {
	verdict, detail := v.verdict(cmd)
	v.counts[verdict]++
	label := agentLabel(cmd)
	quiet := verdict == sigVerified || verdict == sigServerEnded ||
		(v.quietUnsigned && (verdict == sigUnsigned || verdict == sigUnpinned))
	if quiet {
		return verdict
	}
	if v.beforeWarning != nil {
		v.beforeWarning()
	}
	switch verdict {
	case sigForged:
		fmt.Fprintf(v.errw, "mig: FORGED: the result of agent %s (%s) for command %d is not what the agent signed: %s\n",
			label, cmd.AgentID, cmd.ID, detail)
	case sigKeyChanged:
		pin, _ := v.pins.Get(cmd.Signature.Name)
		fmt.Fprintf(v.errw, "mig: KEY CHANGED: agent %s (%s) signed command %d with key %s, but the key pinned for it in %s is %s (agent %s).\n"+
			"mig: KEY CHANGED: someone may be answering in the agent's name; if the agent was reinstalled and made a new key, run: mig agentkeys forget %q\n",
			label, cmd.AgentID, cmd.ID, b64(cmd.Signature.Key), v.path, b64(pin), action.AgentID(pin), cmd.Signature.Name)
	case sigPinnedNow:
		fmt.Fprintf(v.errw, "mig: pinned the key of agent %s (%s) on first use, in %s\n", label, cmd.AgentID, v.path)
	case sigUnpinned:
		fmt.Fprintf(v.errw, "mig: unpinned: %s has no key for agent %s (%s), whose result for command %d is signed but cannot be trusted\n",
			v.path, label, cmd.AgentID, cmd.ID)
	case sigUnsigned:
		fmt.Fprintf(v.errw, "mig: unsigned: the result of agent %s (%s) for command %d carries no signature\n", label, cmd.AgentID, cmd.ID)
	}
	return verdict
}

func (v *resultVerifier) verdict(cmd action.Command) (string, string) {
	s := cmd.Signature
	if s == nil {
		if (cmd.Status == action.CmdExpired || cmd.Status == action.CmdCancelled) && cmd.Code == "" && len(cmd.Results) == 0 {
			return sigServerEnded, ""
		}
		return sigUnsigned, ""
	}
	if cmd.Action.ID != v.actionID {
		return sigForged, fmt.Sprintf("the server lists it under action %d but it is of action %d", v.actionID, cmd.Action.ID)
	}
	if err := action.VerifyResult(cmd.ResultFields(), s); err != nil {
		return sigForged, err.Error()
	}
	if s.ActionHash != "" && s.ActionHash != v.actionHash {
		return sigForged, "the agent ran another action than the one the server shows (the hashes of their signed encodings differ)"
	}
	if s.Name != cmd.AgentName {
		return sigForged, fmt.Sprintf("it is signed by the agent named %q, and shown as %q", s.Name, cmd.AgentName)
	}
	switch v.pins.Check(s.Name, s.Key) {
	case agentkeys.Match:
		return sigVerified, ""
	case agentkeys.Changed:
		return sigKeyChanged, ""
	}
	if !v.tofu {
		return sigUnpinned, ""
	}
	if err := v.pins.Pin(s.Name, s.Key); err != nil {
		return sigForged, err.Error()
	}
	v.dirty = true
	return sigPinnedNow, ""
}

// finish saves new pins and writes the summary; it returns an error if a
// result is forged or signed by a changed key, or, with requireSigned, if
// any result is not verified.
func (v *resultVerifier) finish(requireSigned bool) error {
	var saveErr error
	if v.dirty {
		saveErr = v.pins.Save(v.path)
	}
	c := v.counts
	fmt.Fprintf(v.errw, "signatures: %d verified (%d pinned now), %d unpinned, %d unsigned, %d ended by the server, %d FORGED, %d KEY CHANGED\n",
		c[sigVerified]+c[sigPinnedNow], c[sigPinnedNow], c[sigUnpinned], c[sigUnsigned], c[sigServerEnded], c[sigForged], c[sigKeyChanged])
	if saveErr != nil {
		return saveErr
	}
	if c[sigForged]+c[sigKeyChanged] > 0 {
		return fmt.Errorf("%d results FORGED and %d signed by a changed agent key: do not trust them", c[sigForged], c[sigKeyChanged])
	}
	if requireSigned && c[sigUnpinned]+c[sigUnsigned] > 0 {
		return fmt.Errorf("-requiresigned: %d results are not signed by a pinned agent key (%d unpinned, %d unsigned)",
			c[sigUnpinned]+c[sigUnsigned], c[sigUnpinned], c[sigUnsigned])
	}
	return nil
}

// trusted reports whether a verdict lets a result be printed under
// -requiresigned.
func trusted(verdict string) bool {
	return verdict == sigVerified || verdict == sigPinnedNow || verdict == sigServerEnded
}

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// resultsFlags adds the flags of "mig results".
func resultsFlags(fs *flag.FlagSet) runFunc {
	pinFile := fs.String("pinfile", "", "verify results against the agent keys pinned in `file` (as mig agentkeys export writes it) instead of ~/.mig/agentkeys, without pinning new ones")
	requireSigned := fs.Bool("requiresigned", false, "print only results signed by a pinned agent key and fail if any is not")
	return func(r *runner, g *globals, pos []string) error {
		return r.resultsCmd(g, pos, *pinFile, *requireSigned)
	}
}

// agentkeysVerbs are the verbs of "mig agentkeys".
var agentkeysVerbs = []*command{
	{name: "export", args: "[-o FILE]", summary: "write the pinned agent keys, for other investigators' -pinfile or import",
		flags: agentkeysExportFlags},
	{name: "import", args: "[-replace] FILE", summary: "pin the agent keys of FILE (a file of mig agentkeys export)",
		positional: true, flags: agentkeysImportFlags},
	{name: "forget", args: "NAME...", summary: "forget the pinned keys of agents (reinstalled with a new key)",
		positional: true, run: (*runner).agentkeysForget},
}

// pinPath returns the pin file's path: $MIG_AGENTKEYS, or agentkeys in
// ~/.mig, which is made private first (client.UserDir; the warning goes to
// errw when it had to be).
func pinPath(errw io.Writer) (string, error) {
	if p := os.Getenv(agentkeys.PathEnv); p != "" {
		return p, nil
	}
	dir, was, err := client.UserDir()
	if err != nil {
		return "", fmt.Errorf("agent keys: %w (or set $%s)", err, agentkeys.PathEnv)
	}
	if was != 0 {
		fmt.Fprintf(errw, "mig: warning: %s was mode %04o, open to other users; made it 0700\n", dir, was)
	}
	return filepath.Join(dir, agentkeys.FileName), nil
}

// loadPins returns the pin file's path and pins.
func (r *runner) loadPins() (string, *agentkeys.Set, error) {
	path, err := pinPath(r.stderr)
	if err != nil {
		return "", nil, err
	}
	pins, err := agentkeys.Load(path)
	return path, pins, err
}

func agentkeysExportFlags(fs *flag.FlagSet) runFunc {
	out := fs.String("o", "", "write to `file` instead of stdout")
	return func(r *runner, _ *globals, _ []string) error {
		_, pins, err := r.loadPins()
		if err != nil {
			return err
		}
		if *out == "" {
			_, err := r.stdout.Write(pins.Marshal())
			return err
		}
		if err := pins.Save(*out); err != nil {
			return err
		}
		fmt.Fprintf(r.stderr, "wrote %d agent keys to %s\n", pins.Len(), *out)
		return nil
	}
}

func agentkeysImportFlags(fs *flag.FlagSet) runFunc {
	replace := fs.Bool("replace", false, "replace pins that differ (otherwise a differing pin is an error and nothing is imported)")
	return func(r *runner, _ *globals, pos []string) error {
		if len(pos) != 1 {
			return usagef("mig agentkeys import: give one file (got %d arguments)", len(pos))
		}
		if _, err := os.Stat(pos[0]); err != nil {
			return asUsage(fmt.Errorf("mig agentkeys import: %w", err))
		}
		in, err := agentkeys.Load(pos[0])
		if err != nil {
			return err
		}
		path, pins, err := r.loadPins()
		if err != nil {
			return err
		}
		added, replaced := 0, 0
		var conflicts []string
		for _, n := range in.Names() {
			k, _ := in.Get(n)
			switch pins.Check(n, k) {
			case agentkeys.Match:
				continue
			case agentkeys.Changed:
				conflicts = append(conflicts, n)
				replaced++
			default:
				added++
			}
		}
		if len(conflicts) > 0 && !*replace {
			for _, n := range conflicts {
				old, _ := pins.Get(n)
				k, _ := in.Get(n)
				fmt.Fprintf(r.stderr, "mig: KEY CHANGED: %s pins agent %q to %s, %s to %s\n", pos[0], n, b64(k), path, b64(old))
			}
			return fmt.Errorf("mig agentkeys import: %d agents have another key in %s; nothing imported (-replace to replace them)", len(conflicts), pos[0])
		}
		for _, n := range in.Names() {
			k, _ := in.Get(n)
			if err := pins.Pin(n, ed25519.PublicKey(k)); err != nil {
				return err
			}
		}
		if err := pins.Save(path); err != nil {
			return err
		}
		fmt.Fprintf(r.stderr, "pinned %d new and %d replaced agent keys in %s\n", added, replaced, path)
		return nil
	}
}

func (r *runner) agentkeysForget(_ *globals, pos []string) error {
	if len(pos) == 0 {
		return usagef("mig agentkeys forget: give the names of the agents")
	}
	path, pins, err := r.loadPins()
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range pos {
		if !pins.Forget(n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == len(pos) {
		return fmt.Errorf("mig agentkeys forget: no key is pinned for %q in %s", missing, path)
	}
	if err := pins.Save(path); err != nil {
		return err
	}
	for _, n := range missing {
		fmt.Fprintf(r.stderr, "mig: no key was pinned for %q\n", n)
	}
	fmt.Fprintf(r.stderr, "forgot %d agent keys in %s\n", len(pos)-len(missing), path)
	return nil
}
