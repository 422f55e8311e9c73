package ping

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"
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
// JSON parameters and validates them as ParseParameters does.
func (pingModule) SetFlags(fs *flag.FlagSet) func() (json.RawMessage, error) {
	var (
		p       Parameters
		timeout = durationFlag{d: DefaultTimeout}
	)
	fs.StringVar(&p.Destination, "d", "", "`destination`: an IP address or a host name")
	fs.IntVar(&p.DestinationPort, "dp", 0, "destination `port` of tcp and udp probes")
	fs.StringVar(&p.Protocol, "p", ProtoICMP, "`protocol`: icmp, tcp or udp")
	fs.IntVar(&p.Count, "c", DefaultCount, "how many probes to send, one after the other")
	fs.Var(&timeout, FlagTimeout, "how long each probe waits for an answer: a `duration` (\"5s\") or seconds")
	return func() (json.RawMessage, error) {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		q := Parameters{Destination: p.Destination, DestinationPort: p.DestinationPort, Protocol: p.Protocol}
		if set["c"] {
			q.Count = p.Count
			if q.Count == 0 {
				return nil, fmt.Errorf("%w: count 0 is out of range (want 1 to %d)", ErrInvalidParameters, MaxCount)
			}
		}
		if set[FlagTimeout] {
			q.Timeout = timeout.d.Seconds()
			if timeout.d <= 0 {
				return nil, fmt.Errorf("%w: timeout %s is not positive", ErrInvalidParameters, timeout.d)
			}
		}
		raw, err := json.Marshal(q)
		if err != nil {
			return nil, err
		}
		if _, err := parse(raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
}
