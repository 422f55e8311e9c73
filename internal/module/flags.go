package module

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// BuildFunc is what a module's SetFlags returns: once the flag set is
// parsed, it builds the module's JSON parameters from the flags and parses
// them as an agent will, and returns both, so that the parameters of a
// command line are parsed once: the JSON goes into the action, the Runner
// runs it in place ("mig <module> -t local"). Its errors name the bad value
// and wrap the module's ErrInvalidParameters where the value is invalid.
type BuildFunc func() (json.RawMessage, Runner, error)

// ErrNoFlags is returned by the BuildFunc of a module that has no flags
// (is not a Flagger).
var ErrNoFlags = errors.New("takes no flags")

// SetFlags registers the flags of "mig <m>" on fs and returns its
// BuildFunc. For a module that is not a Flagger it registers nothing, and
// its BuildFunc returns an error wrapping ErrNoFlags that says to launch
// an action file.
func SetFlags(m Module, fs *flag.FlagSet) BuildFunc {
	if f, ok := m.(Flagger); ok {
		return f.SetFlags(fs)
	}
	return func() (json.RawMessage, Runner, error) {
		return nil, nil, fmt.Errorf(`module %s %w: write an action file with {"module": %q, "parameters": {...}} and launch it with "mig action -i FILE"`,
			m.Name(), ErrNoFlags, m.Name())
	}
}

// Build encodes p, a module's parameters built from flags, as JSON and
// parses that JSON with m.ParseParameters, exactly as an agent will parse
// it. It returns the JSON and the Runner. A module's BuildFunc ends with
// it.
func Build(m Module, p any) (json.RawMessage, Runner, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the %s parameters: %w", m.Name(), err)
	}
	r, err := m.ParseParameters(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, r, nil
}

// ParamError is an invalid value of one parameter, which Key, its JSON key,
// names. Its text is Err's: an agent's error reads as it did. A module's
// parser returns it where a key's name differs from the flag that sets it
// (netstat's "listeningport", set by -lp), so that its BuildFunc can name
// the flag with NameFlag.
type ParamError struct {
	Key string
	Err error
}

func (e *ParamError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *ParamError) Unwrap() error { return e.Err }

// NameFlag returns err with the flag that set the bad parameter in front
// ("flag -lp: ..."), when err wraps a *ParamError whose Key flags maps
// (JSON key to flag name); else it returns err unchanged.
func NameFlag(err error, flags map[string]string) error {
	var pe *ParamError
	if !errors.As(err, &pe) {
		return err
	}
	name, ok := flags[pe.Key]
	if !ok {
		return err
	}
	return fmt.Errorf("flag -%s: %w", name, err)
}

// The flag kinds that modules share. Each registers on a flag.FlagSet and
// stores straight into the module's Parameters: "-path /usr -path /bin"
// appends to a []string.

// StringsVar defines a repeatable string flag: each use appends its value
// to *p.
func StringsVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Var((*stringsValue)(p), name, usage)
}

// IntsVar defines a repeatable integer flag: each use appends its value to
// *p. what names one value in errors ("port"): -lp x is refused with
// `invalid value "x" for flag -lp: port "x" is not a number`.
func IntsVar(fs *flag.FlagSet, p *[]int, name, what, usage string) {
	fs.Var(&intsValue{p: p, what: what}, name, usage)
}

// Optional returns p if the flag called name was set on the command line
// of fs, which must be parsed, and nil if it was not: for parameters whose
// absence means "the agent's default" (MIG's options), registered with the
// flag package's own IntVar or BoolVar.
func Optional[T any](fs *flag.FlagSet, name string, p *T) *T {
	if Given(fs, name) {
		return p
	}
	return nil
}

// Given reports whether the flag called name was set on the command line
// of fs, which must be parsed.
func Given(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

type stringsValue []string

func (l *stringsValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ", ")
}

func (l *stringsValue) Set(v string) error {
	*l = append(*l, v)
	return nil
}

type intsValue struct {
	p    *[]int
	what string
}

func (v *intsValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	s := make([]string, len(*v.p))
	for i, n := range *v.p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func (v *intsValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%s %q is not a number", v.what, s)
	}
	*v.p = append(*v.p, n)
	return nil
}
