//go:build !unix

package secfile

import "io/fs"

const enabled = false

func foreignOwner(fs.FileInfo, bool) (uint32, bool) { return 0, false }
