//go:build !unix

package agent

import "io/fs"

// checksModes is false where files have no Unix modes (Windows): the state
// directory's ACL is the operator's to set.
const checksModes = false

func foreignOwner(fs.FileInfo) (uint32, bool) { return 0, false }
