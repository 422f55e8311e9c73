//go:build linux || darwin || freebsd

package file_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/file"
)

// fixture2 builds a second tree for the metadata, gzip, macroal and
// encoding filters:
//
//	small.txt       "0123456789" (10 bytes), modified 10 days ago
//	tool            "#!/bin/sh\necho hi\n", mode 0755
//	keys            authorized_keys: a comment and two known keys
//	rogue_keys      the same with one unknown key
//	empty_keys      empty
//	app.log.gz      gzip of "line one\nsecret=42\n"
//	notgzip.gz      "\x1f\x8b but not gzip"
//	\xff\xfename.txt  a name that is not UTF-8, holding "caf\xe9 au lait\n"
//	huge.bin        64 MiB, sparse, ending in "TAIL-MARKER\n"
func fixture2(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte("line one\nsecret=42\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"small.txt":             []byte("0123456789"),
		"tool":                  []byte("#!/bin/sh\necho hi\n"),
		"keys":                  []byte("# my keys\nssh-ed25519 AAAAkeyone alice\nssh-ed25519 AAAAkeytwo bob\n"),
		"rogue_keys":            []byte("# my keys\nssh-ed25519 AAAAkeyone alice\nssh-ed25519 AAAAevil mallory\n"),
		"empty_keys":            nil,
		"app.log.gz":            gz.Bytes(),
		"notgzip.gz":            []byte("\x1f\x8b but not gzip"),
		"\xff\xfename.txt":      []byte("caf\xe9 au lait\n"),
		"sub/deeper/nested.txt": []byte("nested\n"),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-10 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(root, "small.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	huge, err := os.Create(filepath.Join(root, "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte("TAIL-MARKER\n")
	if _, err := huge.WriteAt(tail, 64<<20-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	if err := huge.Close(); err != nil {
		t.Fatal(err)
	}
	return root, files
}

// badName is how the name "\xff\xfename.txt" comes back in JSON: each
// byte that is not UTF-8 replaced by U+FFFD.
const badName = "\ufffd\ufffdname.txt"

func sha3Hex(data []byte, bits int) string {
	switch bits {
	case 224:
		s := sha3.Sum224(data)
		return hex.EncodeToString(s[:])
	case 384:
		s := sha3.Sum384(data)
		return hex.EncodeToString(s[:])
	case 512:
		s := sha3.Sum512(data)
		return hex.EncodeToString(s[:])
	}
	s := sha3.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestFilters(t *testing.T) {
	root, data := fixture2(t)
	rootJ := jsonString(root)
	search := func(body string) string {
		return `{"searches":{"s":{"paths":[` + rootJ + `],` + body + `}}}`
	}
	small := data["small.txt"]
	tests := []struct {
		name   string
		params string
		want   []string
	}{
		{"size equal", search(`"sizes":["10"]`), []string{"small.txt"}},
		{"size smaller", search(`"sizes":["<1"]`), []string{"empty_keys"}},
		{"size larger with unit", search(`"sizes":[">1m"]`), []string{"huge.bin"}},
		{"size window", search(`"sizes":[">10","<20"],"options":{"maxdepth":1}`), []string{"notgzip.gz", "tool", badName}},
		{"size mismatch", search(`"names":["^(small\\.txt|tool)$"],"sizes":["10"],"options":{"mismatch":["size"]}`), []string{"tool"}},
		{"mode", search(`"modes":["^-rwx"]`), []string{"tool"}},
		{"mode mismatch", search(`"modes":["^-rw-"],"options":{"mismatch":["mode"]}`), []string{"tool"}},
		{"mtime older", search(`"mtimes":[">5d"]`), []string{"small.txt"}},
		{"mtime within minutes", search(`"names":["^small|^tool$"],"mtimes":["<60m"]`), []string{"tool"}},
		{"mtime older, in hours", search(`"names":["^small|^tool$"],"mtimes":[">200h"]`), []string{"small.txt"}},
		{"size in k, g and t", search(`"sizes":["<1k",">0"],"options":{"maxdepth":1}`),
			[]string{"app.log.gz", "keys", "notgzip.gz", "rogue_keys", "small.txt", "tool", badName}},
		{"size below 1g and 1t", search(`"sizes":["<1g","<1t",">65535k"]`), []string{"huge.bin"}},
		{"mtime within", search(`"names":["^small|^tool$"],"mtimes":["<1h"]`), []string{"tool"}},
		{"name mismatch", search(`"names":["\\.txt$"],"options":{"mismatch":["name"],"maxdepth":1}`),
			[]string{"app.log.gz", "empty_keys", "huge.bin", "keys", "notgzip.gz", "rogue_keys", "tool"}},
		{"sha3-224", search(`"sha3":["` + sha3Hex(small, 224) + `"]`), []string{"small.txt"}},
		{"sha3-256", search(`"sha3":["` + sha3Hex(small, 256) + `"]`), []string{"small.txt"}},
		{"sha3-384", search(`"sha3":["` + sha3Hex(small, 384) + `"]`), []string{"small.txt"}},
		{"sha3-512, upper case", search(`"sha3":["` + strings.ToUpper(sha3Hex(small, 512)) + `"]`), []string{"small.txt"}},
		{"sha3-256 is not sha2-256", search(`"sha2":["` + sha3Hex(small, 256) + `"]`), []string{}},
		{"sha384 alias", search(`"sha384":["` + hexSum(small, "sha384") + `"]`), []string{"small.txt"}},
		{"sha512 alias", search(`"sha512":["` + hexSum(small, "sha512") + `"]`), []string{"small.txt"}},
		{"md5 mismatch", search(`"names":["^(small\\.txt|tool)$"],"md5":["` + hexSum(small, "md5") + `"],"options":{"mismatch":["md5"]}`),
			[]string{"tool"}},
		{"mtime mismatch", search(`"names":["^(small\\.txt|tool)$"],"mtimes":[">5d"],"options":{"mismatch":["mtime"]}`), []string{"tool"}},
		{"sha1 mismatch", search(`"names":["^(small\\.txt|tool)$"],"sha1":["` + hexSum(small, "sha1") + `"],"options":{"mismatch":["sha1"]}`),
			[]string{"tool"}},
		{"sha2 mismatch", search(`"names":["^(small\\.txt|tool)$"],"sha2":["` + hexSum(small, "sha512") + `"],"options":{"mismatch":["sha2"]}`),
			[]string{"tool"}},
		{"sha256 alias mismatch, named by its alias", search(`"names":["^(small\\.txt|tool)$"],"sha256":["` + hexSum(small, "sha256") + `"],"options":{"mismatch":["sha256"]}`),
			[]string{"tool"}},
		{"sha384 alias mismatch, named sha2", search(`"names":["^(small\\.txt|tool)$"],"sha384":["` + hexSum(small, "sha384") + `"],"options":{"mismatch":["sha2"]}`),
			[]string{"tool"}},
		{"sha3 mismatch", search(`"names":["^(small\\.txt|tool)$"],"sha3":["` + sha3Hex(small, 384) + `"],"options":{"mismatch":["sha3"]}`),
			[]string{"tool"}},
		{"mismatch of one kind leaves the others alone", search(`"names":["^(small\\.txt|tool)$"],"sizes":["10"],"md5":["` + hexSum(small, "md5") + `"],"options":{"mismatch":["md5"]}`),
			[]string{}},
		{"mismatch with matchany", search(`"names":["^tool$"],"md5":["` + hexSum(small, "md5") + `"],"options":{"matchany":true,"mismatch":["md5"],"maxdepth":1}`),
			[]string{"app.log.gz", "empty_keys", "huge.bin", "keys", "notgzip.gz", "rogue_keys", "tool", badName}},
		{"macroal: every line matches", search(`"names":["keys$"],"contents":["^(#.*|ssh-ed25519 (AAAAkeyone|AAAAkeytwo) .*)$"],"options":{"macroal":true}`),
			[]string{"keys"}},
		{"macroal with mismatch: a rogue line", search(`"names":["keys$"],"contents":["^(#.*|ssh-ed25519 (AAAAkeyone|AAAAkeytwo) .*)$"],"options":{"macroal":true,"mismatch":["content"]}`),
			[]string{"empty_keys", "rogue_keys"}},
		{"macroal with a negated regex: no line matches", search(`"names":["keys$"],"contents":["!mallory"],"options":{"macroal":true}`),
			[]string{"empty_keys", "keys"}},
		{"content mismatch", search(`"names":["keys$"],"contents":["mallory"],"options":{"mismatch":["content"]}`),
			[]string{"empty_keys", "keys"}},
		{"gzip not decompressed", search(`"contents":["^secret=42$"]`), []string{}},
		{"gzip decompressed", search(`"contents":["^secret=42$"],"options":{"decompress":true}`), []string{"app.log.gz"}},
		{"gzip hash of the decompressed content", search(`"sha256":["` + hexSum([]byte("line one\nsecret=42\n"), "sha256") + `"],"options":{"decompress":true}`),
			[]string{"app.log.gz"}},
		{"gzip hash of the file without decompress", search(`"sha256":["` + hexSum(data["app.log.gz"], "sha256") + `"]`),
			[]string{"app.log.gz"}},
		{"decompress leaves plain files alone", search(`"contents":["^0123"],"options":{"decompress":true}`), []string{"small.txt"}},
		{"non-UTF-8 name", search(`"names":["^\\xff"]`), []string{}},
		{"non-UTF-8 name, any byte", search(`"names":["name\\.txt$"]`), []string{badName}},
		{"non-UTF-8 content", search(`"contents":["caf. au lait"]`), []string{badName}},
		{"non-UTF-8 content, (?i)", search(`"contents":["(?i)CAF.*LAIT$"]`), []string{badName}},
		{"end of a huge sparse file", search(`"contents":["TAIL-MARK"]`), []string{"huge.bin"}},
		{"matchany over kinds", search(`"names":["^tool$"],"sizes":["10"],"contents":["TAIL"],"options":{"matchany":true}`),
			[]string{"huge.bin", "small.txt", "tool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, el, st := run(t, t.Context(), tt.params)
			if !res.Success {
				t.Errorf("Success = false, errors %q", res.Errors)
			}
			got := files(t, el, "s", root)
			if !slices.Equal(got, tt.want) {
				t.Errorf("matches = %q, want %q", got, tt.want)
			}
			if st.TotalHits != len(tt.want) {
				t.Errorf("totalhits = %d, want %d", st.TotalHits, len(tt.want))
			}
		})
	}
}

func TestChecks(t *testing.T) {
	root, _ := fixture2(t)
	md5 := hexSum([]byte("0123456789"), "md5")
	_, el, _ := run(t, t.Context(), `{"searches":{"s":{"paths":[`+jsonString(root)+`],"names":["^small"],"sizes":["10",">5000000000"],`+
		`"contents":["^0"],"md5":["`+md5+`"],"options":{"matchany":true}},`+
		`"all":{"paths":[`+jsonString(root)+`],"names":["^small"]}}}`)
	if len(el["s"]) != 1 {
		t.Fatalf("matches = %+v, want small.txt", el["s"])
	}
	got := el["s"][0].Checks
	want := &file.Checks{Names: []string{"^small"}, Sizes: []string{"10"}, Contents: []string{"^0"}, MD5: []string{md5}}
	if got == nil || !slices.Equal(got.Names, want.Names) || !slices.Equal(got.Sizes, want.Sizes) ||
		!slices.Equal(got.Contents, want.Contents) || !slices.Equal(got.MD5, want.MD5) || got.Modes != nil {
		t.Errorf("checks = %+v, want %+v", got, want)
	}
	if len(el["all"]) != 1 || el["all"][0].Checks != nil {
		t.Errorf("matchall matches = %+v, want one without checks", el["all"])
	}
}

func TestReturnSHA256Decompressed(t *testing.T) {
	root, data := fixture2(t)
	_, el, _ := run(t, t.Context(), `{"searches":{"z":{"paths":[`+jsonString(root)+`],"names":["\\.gz$"],"options":{"returnsha256":true,"decompress":true}},`+
		`"raw":{"paths":[`+jsonString(root)+`],"names":["\\.log\\.gz$"],"options":{"returnsha256":true}}}}`)
	sums := map[string]string{}
	for _, m := range el["z"] {
		sums[filepath.Base(m.File)] = m.FileInfo.SHA256
	}
	if got, want := sums["app.log.gz"], hexSum([]byte("line one\nsecret=42\n"), "sha256"); got != want {
		t.Errorf("decompressed sha256 = %q, want %q", got, want)
	}
	if got, want := sums["notgzip.gz"], ""; got != want {
		t.Errorf("sha256 of a file that is not gzip = %q, want %q (it cannot be read through gunzip)", got, want)
	}
	if len(el["raw"]) != 1 || el["raw"][0].FileInfo.SHA256 != hexSum(data["app.log.gz"], "sha256") {
		t.Errorf("raw matches = %+v, want the sha256 of the file itself", el["raw"])
	}
}

func TestMatchLimit(t *testing.T) {
	root, _ := fixture2(t)
	for _, procs := range []int{1, 2, 4} {
		r, err := file.ParseParameters([]byte(`{"searches":{"s":{"paths":[` + jsonString(root) + `],"options":{"matchlimit":2}},` +
			`"t":{"paths":[` + jsonString(root) + `],"names":["^tool$"]}}}`))
		if err != nil {
			t.Fatal(err)
		}
		res := r.Run(t.Context(), module.Env{MaxProcs: procs})
		_, el, st := decode(t, res)
		if len(el["s"]) != 2 || len(el["t"]) != 1 || st.TotalHits != 3 {
			t.Errorf("maxprocs %d: matches %d and %d, totalhits %d; want 2, 1 and 3", procs, len(el["s"]), len(el["t"]), st.TotalHits)
		}
		if !strings.Contains(strings.Join(res.Errors, "\n"), "match limit of 2") {
			t.Errorf("maxprocs %d: errors = %q, want the match limit noted", procs, res.Errors)
		}
	}
}

func TestUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	root, _ := fixture2(t)
	locked := filepath.Join(root, "locked.txt")
	if err := os.WriteFile(locked, []byte("secret=42\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	res, el, st := run(t, t.Context(), `{"searches":{"s":{"paths":[`+jsonString(root)+`],"contents":["secret"],"options":{"decompress":true}}}}`)
	if st.OpenFailed < 1 || !strings.Contains(strings.Join(res.Errors, "\n"), "locked.txt") {
		t.Errorf("openfailed = %d, errors %q: want locked.txt counted and named", st.OpenFailed, res.Errors)
	}
	if got := files(t, el, "s", root); !slices.Equal(got, []string{"app.log.gz"}) {
		t.Errorf("matches = %q, want app.log.gz", got)
	}
}

func TestInterruptedDuringRead(t *testing.T) {
	root, _ := fixture2(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	res, _, _ := run(t, ctx, `{"searches":{"s":{"paths":[`+jsonString(root)+`],"sha512":["`+strings.Repeat("a", 128)+`"]}}}`)
	if res.Success {
		t.Errorf("Success = true after the deadline, want false")
	}
}

func decode(t *testing.T, res action.Result) (action.Result, file.Elements, file.Statistics) {
	t.Helper()
	var el file.Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatalf("elements %s: %v", res.Elements, err)
	}
	var st file.Statistics
	if err := json.Unmarshal(res.Statistics, &st); err != nil {
		t.Fatalf("statistics %s: %v", res.Statistics, err)
	}
	return res, el, st
}

// TestPrivacyContentMatch shows the file module returns which file matched
// and the filter as given, never the line that matched: its result passes
// the agent's privacy limit untouched.
func TestPrivacyContentMatch(t *testing.T) {
	root := t.TempDir()
	secret := "password=" + strings.Repeat("s3cr3t", 20)
	if err := os.WriteFile(filepath.Join(root, "app.conf"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := file.ParseParameters([]byte(`{"searches":{"s":{"paths":[` + jsonString(root) + `],"contents":["^password="],"options":{"matchany":true}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(t.Context(), module.Env{})
	if !res.Success || !res.FoundAnything {
		t.Fatalf("Run: success %t found %t errors %v", res.Success, res.FoundAnything, res.Errors)
	}
	before := string(res.Elements)
	if strings.Contains(before, "s3cr3t") || !strings.Contains(before, "^password=") {
		t.Errorf("elements %s: want the filter as given and none of the matched line", before)
	}
	if n := module.LimitContent(&res, "file", false); n != 0 || string(res.Elements) != before {
		t.Errorf("LimitContent withheld %d values of a file result: %s", n, res.Elements)
	}
}
