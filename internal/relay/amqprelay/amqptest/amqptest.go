// Package amqptest lets the tests of several packages share the one
// RabbitMQ broker named by MIG_TEST_AMQP_URL.
//
// `go test ./...` runs packages in parallel processes. Most tests only make
// a virtual host of their own and can run side by side, but a test that
// restarts the broker (the relay conformance suite's durability cases)
// breaks every other test connected to it at that moment. A test that uses
// the broker holds a shared lock while it runs; a package whose tests
// restart it holds the exclusive lock. The lock is an advisory file lock
// (flock) in the temporary directory, released by the kernel if the
// process dies.
package amqptest

import (
	"os"
	"path/filepath"
	"testing"
)

// LockFile is the file the lock is taken on.
var LockFile = filepath.Join(os.TempDir(), "mig-test-rabbitmq.lock")

// Shared takes the shared lock for the rest of the test (released by
// t.Cleanup): other tests using the broker may run at the same time, a
// restart may not.
func Shared(t testing.TB) {
	t.Helper()
	release, err := lock(false)
	if err != nil {
		t.Fatalf("amqptest: shared lock on %s: %v", LockFile, err)
	}
	t.Cleanup(release)
}

// Exclusive takes the exclusive lock and returns its release function; it
// is meant for a package's TestMain, around m.Run, when the package's tests
// restart the broker. A process must not take Shared while it holds it.
func Exclusive() (release func(), err error) {
	return lock(true)
}
