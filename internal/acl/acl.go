// Package acl is MIG's weighted access control list: for each module, the
// investigators whose signatures count and how much each one weighs, and the
// total weight an action's signers must reach for an agent to run the module.
// Sensitive modules ask for more weight than one investigator has, so that
// they need several investigators to sign.
//
// The ACL is read in the JSON format MIG used:
//
//	{
//	  "default": {
//	    "minimumweight": 2,
//	    "investigators": {
//	      "Alice": {"fingerprint": "E60892BB9BD89A69F759A1A0A3D652173B763E8F", "weight": 1},
//	      "Bob":   {"fingerprint": "9F759A1A0A3D652173B763E8FE60892BB9BD89A6", "weight": 1}
//	    }
//	  },
//	  "agentdestroy": {"minimumweight": 3, "investigators": {...}}
//	}
//
// A module's own entry applies when there is one; otherwise the "default"
// entry does. Everything else is denied: a nil or empty ACL, a module without
// an entry when there is no default, and signers whose weights fall short.
// Each distinct signer key counts once, whatever the number of its signatures
// or of the names it is listed under. The fingerprints given to Authorize are
// the ones sign.VerifyAction returns, so only signatures the agent verified
// itself carry weight.
package acl

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/strictjson"
)

// DefaultEntry is the name of the entry that applies to modules without
// their own.
const DefaultEntry = "default"

// Limits checked by Parse and Validate.
const (
	// MaxSize bounds the JSON that Parse reads.
	MaxSize = 1 << 20
	// MaxWeight bounds weights and minimum weights.
	MaxWeight = 1 << 20
)

// ErrDenied is wrapped by Authorize when the signers may not run the module.
var ErrDenied = errors.New("permission denied by ACL")

// ErrInvalid is wrapped by every error of Parse and Validate.
var ErrInvalid = errors.New("invalid ACL")

// ACL maps a module name, or DefaultEntry, to who may run it.
type ACL map[string]Permission

// Permission lists the investigators whose signatures count for a module and
// the total weight their signatures must reach.
type Permission struct {
	MinimumWeight int                     `json:"minimumweight"`
	Investigators map[string]Investigator `json:"investigators"`
}

// Investigator is one key listed in a Permission, under a name that is only
// a label: the fingerprint is what counts.
type Investigator struct {
	// Fingerprint is the OpenPGP fingerprint of the investigator's primary
	// key: upper-case hex without spaces once parsed.
	Fingerprint string `json:"fingerprint"`
	Weight      int    `json:"weight"`
}

var (
	entryNameRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fingerprintRE = regexp.MustCompile(`^(?:[0-9A-F]{40}|[0-9A-F]{64})$`)
)

// Parse reads an ACL in MIG's JSON format and validates it (see Validate).
// It is strict: unknown fields, duplicate keys, trailing data and a top level
// that is not an object are refused. Fingerprints are normalised to
// upper-case hex without spaces.
func Parse(data []byte) (ACL, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrInvalid, len(data), MaxSize)
	}
	// Canonical refuses duplicate object keys, which encoding/json would
	// silently resolve to the last one.
	if _, err := action.Canonical(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: the ACL must be a JSON object", ErrInvalid)
	}
	var a ACL
	if err := strictjson.Decode(data, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for name, p := range a {
		for who, inv := range p.Investigators {
			inv.Fingerprint = NormalizeFingerprint(inv.Fingerprint)
			p.Investigators[who] = inv
		}
		a[name] = p
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a == nil {
		a = ACL{}
	}
	return a, nil
}

// Validate checks an ACL: entry names are "default" or module names; every
// entry has a minimum weight from 1 to MaxWeight; investigators have a name,
// a normalised fingerprint of 40 (version 4) or 64 (version 6) hex digits,
// and a weight from 0 to MaxWeight.
func (a ACL) Validate() error {
	for name, p := range a {
		if len(name) > action.MaxModuleNameLen || !entryNameRE.MatchString(name) {
			return fmt.Errorf("%w: entry %q is not %q or a module name", ErrInvalid, name, DefaultEntry)
		}
		if p.MinimumWeight < 1 || p.MinimumWeight > MaxWeight {
			return fmt.Errorf("%w: entry %q: minimumweight %d is not between 1 and %d", ErrInvalid, name, p.MinimumWeight, MaxWeight)
		}
		if mod, ok := strings.CutPrefix(name, RawPrefix); ok {
			base, ok := a[mod]
			if !ok {
				base, ok = a[DefaultEntry]
			}
			if ok && p.MinimumWeight <= base.MinimumWeight {
				return fmt.Errorf("%w: entry %q: minimumweight %d must be more than the %d that running %s needs",
					ErrInvalid, name, p.MinimumWeight, base.MinimumWeight, mod)
			}
		}
		for who, inv := range p.Investigators {
			if strings.TrimSpace(who) == "" {
				return fmt.Errorf("%w: entry %q: an investigator has an empty name", ErrInvalid, name)
			}
			if !fingerprintRE.MatchString(inv.Fingerprint) {
				return fmt.Errorf("%w: entry %q: investigator %q: fingerprint %q is not 40 or 64 upper-case hex digits",
					ErrInvalid, name, who, inv.Fingerprint)
			}
			if inv.Weight < 0 || inv.Weight > MaxWeight {
				return fmt.Errorf("%w: entry %q: investigator %q: weight %d is not between 0 and %d",
					ErrInvalid, name, who, inv.Weight, MaxWeight)
			}
		}
	}
	return nil
}

// NormalizeFingerprint returns fp in upper case with all white space
// removed, the form the ACL and package sign use.
func NormalizeFingerprint(fp string) string {
	return strings.ToUpper(strings.Join(strings.Fields(fp), ""))
}

// RawPrefix starts the name of the entry "raw_<module>" that lifts the
// agent's privacy limits on the module's results (see
// module.LimitContent). It must ask for more weight than the module's own
// entry; without it, results are always limited.
const RawPrefix = "raw_"

// AuthorizeRaw decides whether signers may receive the unlimited results of
// module: they must reach the weight of the entry "raw_<module>". Unlike
// Authorize, there is no default: without that entry it denies.
func (a ACL) AuthorizeRaw(module string, fingerprints []string) error {
	if _, ok := a[RawPrefix+module]; !ok {
		return fmt.Errorf("%w: module %q: no %q entry, raw results are never sent", ErrDenied, module, RawPrefix+module)
	}
	return a.Authorize(RawPrefix+module, fingerprints)
}

// Authorize decides whether signers with the given key fingerprints may run
// module. It uses the module's entry, or else the "default" entry; without
// either, or on a nil or empty ACL, it denies. Each distinct fingerprint
// counts once, with the highest weight it is listed with in the entry; the
// signers are allowed when their weights add up to at least the entry's
// minimum weight. A denial wraps ErrDenied and says the weight reached and
// the weight needed.
func (a ACL) Authorize(module string, fingerprints []string) error {
	if len(a) == 0 {
		return fmt.Errorf("%w: module %q: the ACL is empty", ErrDenied, module)
	}
	entry := module
	p, ok := a[module]
	if !ok {
		entry = DefaultEntry
		p, ok = a[DefaultEntry]
	}
	if !ok {
		return fmt.Errorf("%w: module %q has no ACL entry and there is no %q entry", ErrDenied, module, DefaultEntry)
	}
	if p.MinimumWeight < 1 {
		return fmt.Errorf("%w: module %q: entry %q has minimumweight %d, which is invalid",
			ErrDenied, module, entry, p.MinimumWeight)
	}
	weights := map[string]int{}
	for _, inv := range p.Investigators {
		fp := NormalizeFingerprint(inv.Fingerprint)
		w := min(max(inv.Weight, 0), MaxWeight)
		if w > weights[fp] {
			weights[fp] = w
		}
	}
	counted := map[string]bool{}
	total := 0
	for _, fp := range fingerprints {
		fp = NormalizeFingerprint(fp)
		if fp == "" || counted[fp] {
			continue
		}
		counted[fp] = true
		total += weights[fp]
		if total >= p.MinimumWeight {
			return nil
		}
	}
	return fmt.Errorf("%w: module %q: %d distinct signers reach weight %d, entry %q needs %d",
		ErrDenied, module, len(counted), total, entry, p.MinimumWeight)
}
