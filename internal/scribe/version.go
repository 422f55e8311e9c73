package scribe

import (
	"fmt"
	"strings"
)

// Package types, as in Package.Type and in an evr test's "type".
const (
	TypeDpkg = "dpkg"
	TypeRPM  = "rpm"
	TypeAPK  = "apk"
)

// Compare compares two versions of a package of type typ (TypeDpkg,
// TypeRPM or TypeAPK) and returns -1, 0 or +1 as a is older than, the same
// as, or newer than b. An unknown type is an error wrapping
// ErrInvalidPolicy.
func Compare(typ, a, b string) (int, error) {
	switch typ {
	case TypeDpkg:
		return CompareDpkg(a, b), nil
	case TypeRPM:
		return CompareRPM(a, b), nil
	case TypeAPK:
		return CompareAPK(a, b), nil
	}
	return 0, fmt.Errorf("%w: version type %q (want %s, %s or %s)", ErrInvalidPolicy, typ, TypeDpkg, TypeRPM, TypeAPK)
}

// comparator returns the comparison function of a package type, or nil.
func comparator(typ string) func(a, b string) int {
	switch typ {
	case TypeDpkg:
		return CompareDpkg
	case TypeRPM:
		return CompareRPM
	case TypeAPK:
		return CompareAPK
	}
	return nil
}

// sign returns -1, 0 or +1 as n is negative, zero or positive.
func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// compareDigits compares two strings of ASCII digits as unbounded
// non-negative integers: leading zeros are ignored, then the longer number
// is larger, then the first differing digit decides.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// allDigits reports whether s is non-empty and made only of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// splitEpoch splits "epoch:rest" when the part before the first colon is
// all digits; otherwise the epoch is "" (zero) and rest is v.
func splitEpoch(v string) (epoch, rest string) {
	if i := strings.IndexByte(v, ':'); i >= 0 && allDigits(v[:i]) {
		return v[:i], v[i+1:]
	}
	return "", v
}

// CompareDpkg compares two Debian package versions
// ([epoch:]upstream[-revision]) as dpkg does: epochs numerically (absent
// is 0), then the upstream versions, then the revisions (split at the last
// hyphen; absent is "0"), each with Debian's rules: alternately a run of
// non-digits compared character by character, where '~' sorts before
// everything, even the end of the string, and letters sort before all other
// characters; then a run of digits compared numerically. It returns -1, 0
// or +1. A version dpkg would refuse (an epoch that is not a number) is
// still ordered, deterministically: the whole string is then compared as
// the upstream version with epoch 0.
func CompareDpkg(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := compareDigits(ea, eb); c != 0 {
		return c
	}
	ua, va := splitRevision(ra)
	ub, vb := splitRevision(rb)
	if c := debianCompare(ua, ub); c != 0 {
		return c
	}
	return debianCompare(va, vb)
}

// splitRevision splits a Debian version at its last hyphen.
func splitRevision(v string) (upstream, revision string) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, ""
}

// debianOrder is the weight of one character in a non-digit run: the end
// of the run (and digits) 0, '~' -1, letters their code, anything else its
// code plus 256.
func debianOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

// debianCompare is dpkg's verrevcmp on one part of a version.
func debianCompare(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			oa, ob := debianOrder(a, i), debianOrder(b, j)
			if oa != ob {
				return sign(oa - ob)
			}
			i++
			j++
		}
		si := i
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		sj := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareDigits(a[min(si, len(a)):min(i, len(a))], b[min(sj, len(b)):min(j, len(b))]); c != 0 {
			return c
		}
	}
	return 0
}

// CompareRPM compares two RPM versions ([epoch:]version[-release]) as rpm
// does: epochs numerically (absent is 0), then versions with rpmvercmp,
// then releases with rpmvercmp, except that when either side has no
// release the releases are not compared (rpm's rule for "1.0" against
// "1.0-3"). It returns -1, 0 or +1.
func CompareRPM(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := compareDigits(ea, eb); c != 0 {
		return c
	}
	va, rela, hasA := splitRelease(ra)
	vb, relb, hasB := splitRelease(rb)
	if c := RPMVerCmp(va, vb); c != 0 {
		return c
	}
	if !hasA || !hasB {
		return 0
	}
	return RPMVerCmp(rela, relb)
}

// splitRelease splits an RPM version at its last hyphen.
func splitRelease(v string) (version, release string, ok bool) {
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return v[:i], v[i+1:], true
	}
	return v, "", false
}

// RPMVerCmp is rpm's rpmvercmp: it compares one version or release string.
// Both strings are split into segments of ASCII digits or ASCII letters;
// any other character separates segments. '~' sorts before everything,
// even the end of the string; '^' sorts after the end of the string but
// before any other segment. Numeric segments compare as numbers and are
// newer than letter segments; letter segments compare as bytes. When all
// segments compare equal, the string with segments left over is newer. It
// returns -1, 0 or +1.
func RPMVerCmp(a, b string) int {
	if a == b {
		return 0
	}
	sep := func(c byte) bool { return !isDigit(c) && !isAlpha(c) && c != '~' && c != '^' }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && sep(a[i]) {
			i++
		}
		for j < len(b) && sep(b[j]) {
			j++
		}
		ca, cb := byte(0), byte(0)
		if i < len(a) {
			ca = a[i]
		}
		if j < len(b) {
			cb = b[j]
		}
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		isNum := isDigit(a[i])
		class := isAlpha
		if isNum {
			class = isDigit
		}
		for i < len(a) && class(a[i]) {
			i++
		}
		for j < len(b) && class(b[j]) {
			j++
		}
		if sj == j {
			// Segments of different kinds: the number is newer.
			if isNum {
				return 1
			}
			return -1
		}
		var c int
		if isNum {
			c = compareDigits(a[si:i], b[sj:j])
		} else {
			c = strings.Compare(a[si:i], b[sj:j])
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

// apkSuffixes are apk's version suffixes in order; those before "" are
// pre-releases, sorting before the plain version.
var apkSuffixes = []string{"alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p"}

const apkPlain = 4 // index of "" in apkSuffixes

// apkSuffix is one _suffix[number] of an apk version.
type apkSuffix struct {
	rank   int
	number string
}

// apkVersion is a parsed apk version.
type apkVersion struct {
	components []string // digit strings
	letter     byte     // 0 when absent
	suffixes   []apkSuffix
	revision   string // digits after -r
	rest       string // what does not parse, compared bytewise
}

// parseAPK parses digits{.digits}[letter]{_suffix[digits]}[-rN]; what does
// not follow the grammar is kept in rest.
func parseAPK(v string) apkVersion {
	var p apkVersion
	i := 0
	digits := func() string {
		s := i
		for i < len(v) && isDigit(v[i]) {
			i++
		}
		return v[s:i]
	}
	for {
		d := digits()
		if d == "" {
			break
		}
		p.components = append(p.components, d)
		if i+1 < len(v) && v[i] == '.' && isDigit(v[i+1]) {
			i++
			continue
		}
		break
	}
	if len(p.components) > 0 {
		if i < len(v) && isLower(v[i]) && (i+1 == len(v) || v[i+1] == '_' || v[i+1] == '-') {
			p.letter = v[i]
			i++
		}
	suffixes:
		for i < len(v) && v[i] == '_' {
			for rank, name := range apkSuffixes {
				if name != "" && strings.HasPrefix(v[i+1:], name) {
					i += 1 + len(name)
					p.suffixes = append(p.suffixes, apkSuffix{rank: rank, number: digits()})
					continue suffixes
				}
			}
			break
		}
		if strings.HasPrefix(v[i:], "-r") && i+2 < len(v) && allDigits(v[i+2:]) {
			p.revision = v[i+2:]
			i = len(v)
		}
	}
	p.rest = v[i:]
	return p
}

// compareAPKComponent compares the components at index i: the first
// numerically; the others as strings without trailing zeros when either
// starts with a zero, numerically otherwise.
func compareAPKComponent(i int, a, b string) int {
	if i > 0 && (a[0] == '0' || b[0] == '0') {
		return strings.Compare(strings.TrimRight(a, "0"), strings.TrimRight(b, "0"))
	}
	return compareDigits(a, b)
}

// CompareAPK compares two Alpine package versions
// (digits{.digits}[letter]{_suffix[digits]}[-rN]) with the rules apk-tools
// follows (those of Gentoo's package manager specification): numeric
// components one by one, the first as a number, the others as numbers
// unless either starts with a zero, in which case as strings without their
// trailing zeros ("1.01" < "1.1"); more components is newer; then the
// letter (none first); then the suffixes one by one, by rank
// (_alpha < _beta < _pre < _rc < none < _cvs < _svn < _git < _hg < _p) then
// number, where an extra pre-release suffix is older and an extra
// post-release one newer; then the -rN revision (none is -r0). What does
// not follow that grammar is compared byte by byte at the end. It returns
// -1, 0 or +1.
func CompareAPK(a, b string) int {
	if a == b {
		return 0
	}
	pa, pb := parseAPK(a), parseAPK(b)
	for i := 0; i < len(pa.components) && i < len(pb.components); i++ {
		if c := compareAPKComponent(i, pa.components[i], pb.components[i]); c != 0 {
			return c
		}
	}
	if c := sign(len(pa.components) - len(pb.components)); c != 0 {
		return c
	}
	if c := sign(int(pa.letter) - int(pb.letter)); c != 0 {
		return c
	}
	for i := 0; i < len(pa.suffixes) || i < len(pb.suffixes); i++ {
		sa, sb := apkSuffix{rank: apkPlain}, apkSuffix{rank: apkPlain}
		if i < len(pa.suffixes) {
			sa = pa.suffixes[i]
		}
		if i < len(pb.suffixes) {
			sb = pb.suffixes[i]
		}
		if c := sign(sa.rank - sb.rank); c != 0 {
			return c
		}
		if c := compareDigits(sa.number, sb.number); c != 0 {
			return c
		}
	}
	if c := compareDigits(pa.revision, pb.revision); c != 0 {
		return c
	}
	return strings.Compare(pa.rest, pb.rest)
}
