// Package timedrift is MIG's timedrift module: it reports an endpoint's
// local time and whether its clock drifts from NTP servers by more than an
// allowed duration. It asks the servers itself with SNTP (RFC 4330) over UDP,
// in pure Go.
//
// # Parameters
//
//	{"drift": "10s", "servers": ["0.pool.ntp.org", "ntp.example.net:123"], "timeout": "5s"}
//
// drift is the allowed drift (a Go duration, default DefaultDrift);
// servers the NTP servers to ask, host or host:port (default
// DefaultServers); timeout how long to wait for each server (default
// DefaultTimeout). Every server is asked once, all at the same time.
//
// # Results
//
// Elements are an Elements: the local time, whether the clock drifts beyond
// the allowed drift, and the drift measured against each server that
// answered. The clock drifts when the median offset of the servers that
// answered is larger than the allowed drift (in either direction).
// Statistics are a Statistics: each server's answer or failure.
// FoundAnything is true when the clock drifts. Success is false when no
// server answered.
package timedrift

import (
	"errors"
	"time"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "timedrift"

// Defaults.
const (
	DefaultDrift   = 10 * time.Second
	DefaultTimeout = 5 * time.Second
	// MaxServers bounds the servers of one operation.
	MaxServers = 16
	// MaxTimeout bounds the timeout of one server.
	MaxTimeout = time.Minute
)

// DefaultServers are asked when the parameters list none.
var DefaultServers = []string{"time.nist.gov", "0.pool.ntp.org", "1.pool.ntp.org"}

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid timedrift parameters")

func init() { module.Register(timedriftModule{}) }

type timedriftModule struct{}

func (timedriftModule) Name() string { return Name }

func (timedriftModule) Summary() string {
	return "report the local time and whether it drifts from NTP servers beyond an allowed duration"
}

func (timedriftModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}
