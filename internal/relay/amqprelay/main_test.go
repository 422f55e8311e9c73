package amqprelay

import (
	"fmt"
	"os"
	"testing"

	"github.com/migplatform/mig/internal/relay/amqprelay/amqptest"
)

// TestMain holds the exclusive broker lock while the package's tests run:
// the conformance suite restarts RabbitMQ, which must not happen under
// another package's test (internal/e2e) using the same broker.
func TestMain(m *testing.M) {
	release, err := amqptest.Exclusive()
	if err != nil {
		fmt.Fprintf(os.Stderr, "amqprelay tests: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	release()
	os.Exit(code)
}
