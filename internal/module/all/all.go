// Package all registers every production module: a binary that imports it
// for its side effects,
//
//	import _ "github.com/migplatform/mig/internal/module/all"
//
// gets all of them.
package all

import (
	// Each import registers its module in init.
	_ "github.com/migplatform/mig/internal/module/agentdestroy"
	_ "github.com/migplatform/mig/internal/module/file"
	_ "github.com/migplatform/mig/internal/module/memory"
	_ "github.com/migplatform/mig/internal/module/netstat"
	_ "github.com/migplatform/mig/internal/module/ping"
	_ "github.com/migplatform/mig/internal/module/pkg"
	_ "github.com/migplatform/mig/internal/module/scribe"
	_ "github.com/migplatform/mig/internal/module/sshkey"
	_ "github.com/migplatform/mig/internal/module/timedrift"
)
