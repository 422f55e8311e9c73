package amqprelay

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/relay/amqprelay/amqptest"
)

// TestMain holds the exclusive broker lock while the package's tests run:
// the conformance suite restarts RabbitMQ, which must not happen under
// another package's test (internal/e2e) using the same broker.
//
// A fuzzing worker (go test -fuzz starts the test binary again with
// -test.fuzzworker) runs only the fuzz function, never the broker, and is a
// child of the process that holds the lock: waiting for it would stall the
// fuzzer for ever, so it runs without.
func TestMain(m *testing.M) {
	for _, arg := range os.Args[1:] {
		if strings.HasPrefix(arg, "-test.fuzzworker") {
			os.Exit(m.Run())
		}
	}
	release, err := amqptest.Exclusive()
	if err != nil {
		fmt.Fprintf(os.Stderr, "amqprelay tests: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	release()
	os.Exit(code)
}
