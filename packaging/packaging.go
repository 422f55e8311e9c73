// Package packaging holds the files that install MIG on a host: the systemd
// units (systemd/), the package scripts (scripts/) and the launchd property
// lists (launchd/). internal/release puts them into the .deb and .rpm
// packages; mig-agent -install writes the agent's unit or property list from
// them. Each unit says in its comments what its sandbox restricts and why.
package packaging

import "embed"

// Files holds systemd/*, scripts/*.sh and launchd/*.plist.
//
//go:embed systemd/* scripts/*.sh launchd/*.plist
var Files embed.FS

// File returns the embedded file at name (e.g. "systemd/mig-agent.service").
// It panics if there is none: the names are constants of this module.
func File(name string) []byte {
	b, err := Files.ReadFile(name)
	if err != nil {
		panic("packaging: " + err.Error())
	}
	return b
}
