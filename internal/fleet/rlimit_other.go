//go:build !unix

package fleet

// RaiseFileLimit reports no limit where the system has no such limit to
// raise.
func RaiseFileLimit() (uint64, error) { return 0, nil }
