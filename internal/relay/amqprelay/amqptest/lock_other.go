//go:build !unix

package amqptest

// lock is a no-op where flock does not exist: the broker-restarting tests
// need rabbitmqctl as root on the broker's machine and skip elsewhere.
func lock(bool) (func(), error) { return func() {}, nil }
