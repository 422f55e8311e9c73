package natsrelay

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"
)

// ParseCalloutIssuer returns the issuer key pair of a Callout from its seed
// (the text of an nkey seed file, "SA...", surrounding space ignored).
func ParseCalloutIssuer(seed []byte) (nkeys.KeyPair, error) {
	return parseSeed(seed, nkeys.PrefixByteAccount, "an account seed (SA...) made by mig-server -gen-callout-key or nsc")
}

// ParseCalloutXKey returns the xkey pair of a Callout from its seed
// ("SX...", surrounding space ignored).
func ParseCalloutXKey(seed []byte) (nkeys.KeyPair, error) {
	return parseSeed(seed, nkeys.PrefixByteCurve, "a curve (xkey) seed (SX...) made by mig-server -gen-callout-key")
}

// parseSeed decodes an nkey seed of the given type. Errors never repeat the
// seed.
func parseSeed(seed []byte, want nkeys.PrefixByte, what string) (nkeys.KeyPair, error) {
	s := bytes.TrimSpace(seed)
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: empty, want %s", ErrCalloutKey, what)
	}
	prefix, _, err := nkeys.DecodeSeed(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not an nkey seed (%v), want %s", ErrCalloutKey, err, what)
	}
	if prefix != want {
		return nil, fmt.Errorf("%w: a %s seed, want %s", ErrCalloutKey, prefix, what)
	}
	kp, err := nkeys.FromSeed(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCalloutKey, err)
	}
	return kp, nil
}

// NewCalloutKeys makes a Callout's issuer (account) and xkey (curve) key
// pairs from crypto/rand and returns their seeds.
func NewCalloutKeys() (issuerSeed, xkeySeed []byte, err error) {
	issuer, err := nkeys.CreatePairWithRand(nkeys.PrefixByteAccount, rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("making the callout issuer key: %w", err)
	}
	xkey, err := nkeys.CreateCurveKeysWithRand(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("making the callout xkey: %w", err)
	}
	if issuerSeed, err = issuer.Seed(); err != nil {
		return nil, nil, err
	}
	if xkeySeed, err = xkey.Seed(); err != nil {
		return nil, nil, err
	}
	return issuerSeed, xkeySeed, nil
}

// CalloutNATSOptions are the values of the nats-server configuration that
// CalloutNATSConfig writes.
type CalloutNATSOptions struct {
	// Issuer is the public key of the Callout's issuer ("A..."). Required.
	Issuer string
	// XKey is the public key of the Callout's xkey ("X..."), or "".
	XKey string
	// HubUser and HubPassword are the login of mig-server's hub and
	// Callout; HubUser "" means HubUser. HubPassword is written as is: a
	// bcrypt hash ("$2a$...") works too.
	HubUser, HubPassword string
}

// CalloutNATSConfig returns the part of a nats-server configuration file
// that sends agents' logins to mig-server's Callout: the hub's own user,
// exempt from the callout, an auth_callout block, a max_payload that fits
// MIG's largest messages and an authorization timeout long enough for the
// logins of a whole fleet after a restart. Users and agents stay in the
// global account.
func CalloutNATSConfig(o CalloutNATSOptions) (string, error) {
	if !nkeys.IsValidPublicAccountKey(o.Issuer) {
		return "", fmt.Errorf("%w: issuer %q is not a public account key", ErrCalloutKey, o.Issuer)
	}
	if o.XKey != "" && !nkeys.IsValidPublicCurveKey(o.XKey) {
		return "", fmt.Errorf("%w: xkey %q is not a public curve key", ErrCalloutKey, o.XKey)
	}
	if o.HubUser == "" {
		o.HubUser = HubUser
	}
	if o.HubPassword == "" {
		return "", fmt.Errorf("%w: the hub needs a password", ErrConfig)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MIG: agents log in through mig-server (auth callout).\n")
	fmt.Fprintf(&b, "max_payload: %d\n", DefaultMaxPayload)
	fmt.Fprintf(&b, "authorization {\n")
	fmt.Fprintf(&b, "  timeout: 5\n")
	fmt.Fprintf(&b, "  users: [ { user: %s, password: %s } ]\n", strconv.Quote(o.HubUser), strconv.Quote(o.HubPassword))
	fmt.Fprintf(&b, "  auth_callout {\n")
	fmt.Fprintf(&b, "    issuer: %s\n", strconv.Quote(o.Issuer))
	fmt.Fprintf(&b, "    auth_users: [ %s ]\n", strconv.Quote(o.HubUser))
	if o.XKey != "" {
		fmt.Fprintf(&b, "    xkey: %s\n", strconv.Quote(o.XKey))
	}
	fmt.Fprintf(&b, "  }\n")
	fmt.Fprintf(&b, "}\n")
	return b.String(), nil
}
