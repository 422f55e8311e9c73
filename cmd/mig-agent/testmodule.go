//go:build migtest

package main

// Test builds (-tags migtest) also serve the "testmodule" module, which can
// succeed, panic, hang, exit or print garbage on demand.
import _ "github.com/migplatform/mig/internal/module/testmodule"
