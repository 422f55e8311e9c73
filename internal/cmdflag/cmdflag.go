// Package cmdflag holds what the command lines of MIG's binaries (mig,
// mig-server, mig-fleet) share about their flags, so that each rule has one
// home. It imports only the standard library.
package cmdflag

import "flag"

// IsSet reports whether the flag name was given on fs's command line (fs
// must have been parsed), as opposed to holding its default value: the way
// to tell "-expire 0" from no -expire at all.
func IsSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
