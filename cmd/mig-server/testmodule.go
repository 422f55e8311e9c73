//go:build migtest

package main

// Test builds (go build -tags migtest) carry the test module used by the
// end-to-end tests.
import _ "github.com/migplatform/mig/internal/module/testmodule"
