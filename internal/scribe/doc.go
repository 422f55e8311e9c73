// Package scribe is MIG's policy engine (Mozilla Scribe's format): a
// vulnerability or compliance policy, written as JSON, is evaluated on an
// endpoint against its installed packages and its files, and says which
// tests are true.
//
// # Policy
//
// A policy has objects, tests and optional variables:
//
//	{"variables": [{"key": "root", "value": "/etc"}],
//	 "objects": [
//	   {"object": "libnss3-package", "package": {"name": "libnss3:amd64"}},
//	   {"object": "kernels", "package": {"collectmatch": "^linux-image-[0-9]", "onlynewest": true}},
//	   {"object": "release", "filecontent": {"path": "${root}", "file": "^os-release$",
//	                                         "expression": "^VERSION_CODENAME=(\\S+)"}},
//	   {"object": "boot", "filename": {"path": "/boot", "file": "^vmlinuz-(.+)$"}},
//	   {"object": "fixed", "raw": {"identifiers": [{"identifier": "a", "value": "1.0"}]}}],
//	 "tests": [
//	   {"test": "jammy", "object": "release", "exactmatch": {"value": "jammy"}},
//	   {"test": "libnss3 test", "object": "libnss3-package", "if": ["jammy"],
//	    "evr": {"operation": "<", "value": "2:3.19.2"},
//	    "name": "USN-1234-1", "description": "...", "aliases": ["CVE-2015-1234"],
//	    "tags": [{"key": "severity", "value": "high"}]}]}
//
// An object collects candidates, each an identifier and a value:
//
//   - package: the installed packages of that name (identifier
//     "name:arch", value the version); "name:arch" also requires the
//     architecture; collectmatch (a regular expression over names)
//     selects many; type restricts to one database (dpkg, rpm, apk);
//     onlynewest keeps the newest version of each name.
//   - filecontent: for each file under path whose base name matches file
//     (at most maxdepth deep, 10 by default), each line matching
//     expression; the value is its first capture group, the whole match
//     when it has none, or built with concat: a template expanded with
//     the captures when it holds a "$" ("$1.$2"), otherwise the separator
//     joining every capture group (Scribe's "concat": ".").
//     import-chain names other filecontent or filename objects evaluated
//     once per value collected, with ${chain_root} set to that value; their
//     candidates are added.
//   - filename: each file under path whose base name matches file; the
//     value is file's first capture group, or the base name.
//   - raw: literal identifiers and values.
//
// Paths expand ${key} variables and are read under the evaluation's root.
// A path that does not exist has no candidates.
//
// A test checks one object's candidates with at most one of (none is a
// noop, as in Scribe):
//
//   - evr: compares each candidate's version with value ("<", "<=", "=",
//     ">=", ">") using the ordering of the package's own database: Debian's
//     for dpkg (CompareDpkg), rpm's for rpm (CompareRPM), apk's for apk
//     (CompareAPK); "type" forces one; other candidates use dpkg's;
//   - regexp: the value matches a regular expression;
//   - exactmatch: the value is exactly a string;
//   - noop: every candidate passes (collection only).
//
// A test's master result is true when any candidate passes; when the test
// sets expectedresult, it is true when "any candidate passes" equals
// expectedresult. A test with if runs only when every test it names is
// true; otherwise it is false with no candidates, or an error when one of
// them is an error. A test whose object cannot be collected (no package
// database, an unreadable file) is an error. Each result also has one
// sub-result per candidate, with its identifier and value.
//
// Parse and Compile refuse, naming the object or test, an object with no
// type or several, a test with several types, a test naming a missing object or test, a cycle of if
// dependencies or of import chains, a regular expression that does not
// compile, and an unknown operation or version type.
//
// # Evaluation
//
// Evaluate reads the package list once per evaluation (through a
// PackageSource), indexes it by name, collects each object at most once,
// and runs the tests in dependency order. Print writes results one line
// per test (FormatLine), over several lines (FormatHuman) or as JSON
// (FormatJSON).
//
// # OVAL
//
// ConvertOVAL turns Ubuntu and Red Hat OVAL definitions into a policy: see
// its documentation.
package scribe
