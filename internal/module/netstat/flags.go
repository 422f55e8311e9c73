package netstat

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ", ")
}

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// portList is a repeatable port flag.
type portList []int

func (l *portList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

func (l *portList) Set(v string) error {
	p, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("port %q is not a number", v)
	}
	*l = append(*l, p)
	return nil
}

// SetFlags registers MIG's flags of "mig netstat" on fs; the returned
// function builds the JSON parameters and validates them as
// ParseParameters does.
func (netstatModule) SetFlags(fs *flag.FlagSet) func() (json.RawMessage, error) {
	var (
		lm, nm, li, ni, ci stringList
		lp                 portList
		namespaces         bool
	)
	fs.Var(&lm, "lm", "`regex` on the MAC of local interfaces, case-insensitive (repeatable)")
	fs.Var(&nm, "nm", "`regex` on the MAC of neighbours in the ARP/NDP tables, case-insensitive (repeatable)")
	fs.Var(&li, "li", "local interface address: an `IP or CIDR` (repeatable)")
	fs.Var(&ni, "ni", "neighbour address in the ARP/NDP tables: an `IP or CIDR` (repeatable)")
	fs.Var(&ci, "ci", "remote address of a TCP or UDP connection: an `IP or CIDR` (repeatable)")
	fs.Var(&lp, "lp", "listening TCP or bound UDP `port` (repeatable)")
	fs.BoolVar(&namespaces, "namespaces", false, "also search every other network namespace (Linux)")
	return func() (json.RawMessage, error) {
		p := Parameters{
			LocalMAC: lm, NeighborMAC: nm, LocalIP: li, NeighborIP: ni, ConnectedIP: ci,
			ListeningPort: lp, SearchNamespaces: namespaces,
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		if _, err := parse(raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
}
