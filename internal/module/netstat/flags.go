package netstat

import (
	"encoding/json"
	"flag"

	"github.com/migplatform/mig/internal/module"
)

// SetFlags registers MIG's flags of "mig netstat" on fs; the returned
// function builds the JSON parameters and parses them as ParseParameters
// does (see module.BuildFunc).
func (m netstatModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var p Parameters
	module.StringsVar(fs, &p.LocalMAC, "lm", "`regex` on the MAC of local interfaces, case-insensitive (repeatable)")
	module.StringsVar(fs, &p.NeighborMAC, "nm", "`regex` on the MAC of neighbours in the ARP/NDP tables, case-insensitive (repeatable)")
	module.StringsVar(fs, &p.LocalIP, "li", "local interface address: an `IP or CIDR` (repeatable)")
	module.StringsVar(fs, &p.NeighborIP, "ni", "neighbour address in the ARP/NDP tables: an `IP or CIDR` (repeatable)")
	module.StringsVar(fs, &p.ConnectedIP, "ci", "remote address of a TCP or UDP connection: an `IP or CIDR` (repeatable)")
	module.IntsVar(fs, &p.ListeningPort, "lp", "port", "listening TCP or bound UDP `port` (repeatable)")
	fs.BoolVar(&p.SearchNamespaces, "namespaces", false, "also search every other network namespace (Linux)")
	return func() (json.RawMessage, module.Runner, error) {
		raw, r, err := module.Build(m, p)
		return raw, r, module.NameFlag(err, flagOf)
	}
}

// flagOf maps each parameter to the flag of "mig netstat" that sets it, so
// that an error about a parameter names the flag.
var flagOf = map[string]string{
	"localmac": "lm", "neighbormac": "nm", "localip": "li", "neighborip": "ni",
	"connectedip": "ci", "listeningport": "lp",
}
