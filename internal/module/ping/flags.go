package ping

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/migplatform/mig/internal/module"
)

// FlagTimeout is the name of the flag of "mig ping" that sets the timeout
// of each probe. MIG called it -t, but -t is the target of every "mig"
// subcommand and MIG's own seed command lines use it as the target
// ("mig ping -t \"name LIKE '%sc13%'\" ..."), so the timeout has its own
// name here.
const FlagTimeout = "timeout"

// durationFlag is a timeout flag: a Go duration ("500ms", "5s") or a
// number of seconds ("5", "0.5"), as MIG took it.
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string {
	if f == nil {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(v string) error {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if !(secs > 0) || secs > MaxTimeout.Seconds() {
			return fmt.Errorf("timeout %q is out of range (want more than 0 and at most %s)", v, MaxTimeout)
		}
		f.d = time.Duration(secs * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("timeout %q is not a duration (\"5s\") or a number of seconds", v)
	}
	f.d = d
	return nil
}

// SetFlags registers the flags of "mig ping" on fs: MIG's -d, -dp, -p and
// -c, and -timeout (see FlagTimeout). The returned function builds the
// JSON parameters and parses them as ParseParameters does (see
// module.BuildFunc).
func (m pingModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var (
		p       Parameters
		count   int
		timeout = durationFlag{d: DefaultTimeout}
	)
	fs.StringVar(&p.Destination, "d", "", "`destination`: an IP address or a host name")
	fs.IntVar(&p.DestinationPort, "dp", 0, "destination `port` of tcp and udp probes")
	fs.StringVar(&p.Protocol, "p", ProtoICMP, "`protocol`: icmp, tcp or udp")
	fs.IntVar(&count, "c", DefaultCount, "how many probes to send, one after the other")
	fs.Var(&timeout, FlagTimeout, "how long each probe waits for an answer: a `duration` (\"5s\") or seconds")
	return func() (json.RawMessage, module.Runner, error) {
		// Count and timeout go into the parameters only when given, so
		// that the agent applies its defaults; given, 0 is refused (in
		// the parameters, 0 means the default).
		q := p
		if module.Given(fs, "c") {
			q.Count = count
			if q.Count == 0 {
				return nil, nil, fmt.Errorf("flag -c: %w: count 0 is out of range (want 1 to %d)", ErrInvalidParameters, MaxCount)
			}
		}
		if module.Given(fs, FlagTimeout) {
			q.Timeout = timeout.d.Seconds()
			if timeout.d <= 0 {
				return nil, nil, fmt.Errorf("%w: timeout %s is not positive", ErrInvalidParameters, timeout.d)
			}
		}
		raw, r, err := module.Build(m, q)
		return raw, r, module.NameFlag(err, flagOf)
	}
}

// flagOf maps the parameters to the flags of "mig ping" that set them, so
// that an error about a parameter names the flag.
var flagOf = map[string]string{"destination": "d", "destinationport": "dp", "protocol": "p", "count": "c"}
