//go:build linux || darwin || freebsd

package file_test

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/file"
)

// fixture builds a tree in a temporary directory and returns its root:
//
//	a.txt          "hello world\nsecond line\n"
//	b.conf         sshd_config-like, CRLF line ends
//	long.txt       a 1 MiB line ending in NEEDLE, then "short"
//	empty
//	fifo           a named pipe, never opened
//	dangling ->    nowhere
//	loop -> .      a symbolic link to its own directory
//	ping <-> pong  symbolic links to each other
//	link_a -> a.txt
//	sub/c.txt      "deep content\n"
//	sub/sub2/d.txt "deeper\n"
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"a.txt":          "hello world\nsecond line\n",
		"b.conf":         "# sshd\r\nLogLevel VERBOSE\r\nPasswordAuthentication no\r\n",
		"long.txt":       strings.Repeat("x", 1<<20) + "NEEDLE\nshort\n",
		"empty":          "",
		"sub/c.txt":      "deep content\n",
		"sub/sub2/d.txt": "deeper\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"dangling": "nowhere",
		"loop":     ".",
		"ping":     "pong",
		"pong":     "ping",
		"link_a":   "a.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func run(t *testing.T, ctx context.Context, params string) (action.Result, file.Elements, file.Statistics) {
	t.Helper()
	r, err := file.ParseParameters([]byte(params))
	if err != nil {
		t.Fatalf("ParseParameters(%s): %v", params, err)
	}
	res := r.Run(ctx, module.Env{})
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

// files returns the matched files of label, relative to root.
func files(t *testing.T, el file.Elements, label, root string) []string {
	t.Helper()
	out := []string{}
	for _, m := range el[label] {
		rel, err := filepath.Rel(root, m.File)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

func hexSum(data []byte, kind string) string {
	switch kind {
	case "md5":
		s := md5.Sum(data)
		return hex.EncodeToString(s[:])
	case "sha1":
		s := sha1.Sum(data)
		return hex.EncodeToString(s[:])
	case "sha384":
		s := sha512.Sum384(data)
		return hex.EncodeToString(s[:])
	case "sha512":
		s := sha512.Sum512(data)
		return hex.EncodeToString(s[:])
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestSearch(t *testing.T) {
	root := fixture(t)
	a := []byte("hello world\nsecond line\n")
	rootJ := jsonString(root)
	search := func(body string) string {
		return `{"searches":{"s":{"paths":[` + rootJ + `],` + body + `}}}`
	}
	tests := []struct {
		name   string
		params string
		want   []string
	}{
		{"name", search(`"names":["^a\\.txt$"]`), []string{"a.txt"}},
		{"name at maxdepth 1", search(`"names":["\\.txt$"],"options":{"maxdepth":1}`),
			[]string{"a.txt", "long.txt"}},
		{"name at maxdepth 2", search(`"names":["\\.txt$"],"options":{"maxdepth":2}`),
			[]string{"a.txt", "long.txt", "sub/c.txt"}},
		{"name at default depth", search(`"names":["\\.txt$"]`),
			[]string{"a.txt", "long.txt", "sub/c.txt", "sub/sub2/d.txt"}},
		{"maxdepth 0 on a directory", search(`"options":{"maxdepth":0}`), []string{}},
		{"negated name", search(`"names":["!\\.txt$"],"options":{"maxdepth":1}`),
			[]string{"b.conf", "empty", "link_a"}},
		{"no filters lists regular files", search(`"options":{"maxdepth":1}`),
			[]string{"a.txt", "b.conf", "empty", "link_a", "long.txt"}},
		{"content at the end of a 1 MiB line", search(`"contents":["NEEDLE$"]`), []string{"long.txt"}},
		{"content on a short line after a long one", search(`"contents":["^short$"]`), []string{"long.txt"}},
		{"content with CRLF line ends", search(`"contents":["(?i)^passwordauthentication no$"]`), []string{"b.conf"}},
		{"two contents, all must match", search(`"contents":["(?i)^loglevel verbose$","^# sshd$"]`), []string{"b.conf"}},
		{"two contents, one does not match", search(`"contents":["(?i)^loglevel verbose$","nothing like this"]`), []string{}},
		{"name and negated content", search(`"names":["\\.txt$"],"contents":["!hello"]`),
			[]string{"long.txt", "sub/c.txt", "sub/sub2/d.txt"}},
		{"negated content matches an empty file", search(`"names":["^empty$"],"contents":["!."]`), []string{"empty"}},
		{"md5, upper case", search(`"md5":["` + strings.ToUpper(hexSum(a, "md5")) + `"]`), []string{"a.txt", "link_a"}},
		{"sha1", search(`"sha1":["` + hexSum(a, "sha1") + `"]`), []string{"a.txt", "link_a"}},
		{"sha256 alias", search(`"sha256":["` + hexSum(a, "sha256") + `"]`), []string{"a.txt", "link_a"}},
		{"sha2 picks sha384 by length", search(`"sha2":["` + hexSum(a, "sha384") + `"]`), []string{"a.txt", "link_a"}},
		{"sha2 picks sha512 by length", search(`"sha2":["` + hexSum(a, "sha512") + `"]`), []string{"a.txt", "link_a"}},
		{"one of several hashes", search(`"sha2":["` + hexSum([]byte("x"), "sha256") + `","` + hexSum(a, "sha512") + `"]`),
			[]string{"a.txt", "link_a"}},
		{"hash of an empty file", search(`"md5":["` + hexSum(nil, "md5") + `"]`), []string{"empty"}},
		{"hash and name, matchall", search(`"names":["^a"],"md5":["` + hexSum(a, "md5") + `"]`), []string{"a.txt"}},
		{"matchall", search(`"names":["^b\\.conf$"],"contents":["deeper"]`), []string{}},
		{"matchany", search(`"names":["^b\\.conf$"],"contents":["deeper"],"options":{"matchany":true}`),
			[]string{"b.conf", "sub/sub2/d.txt"}},
		{"matchall false means matchany", search(`"names":["^b\\.conf$"],"contents":["deeper"],"options":{"matchall":false}`),
			[]string{"b.conf", "sub/sub2/d.txt"}},
		{"matchany with two names", search(`"names":["^a\\.txt$","^c\\.txt$"],"options":{"matchany":true}`),
			[]string{"a.txt", "sub/c.txt"}},
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
			if res.FoundAnything != (len(tt.want) > 0) {
				t.Errorf("FoundAnything = %v, want %v", res.FoundAnything, len(tt.want) > 0)
			}
			if st.TotalHits != len(tt.want) {
				t.Errorf("totalhits = %d, want %d", st.TotalHits, len(tt.want))
			}
		})
	}
}

func TestSearchPaths(t *testing.T) {
	root := fixture(t)
	j := func(p string) string { return jsonString(filepath.Join(root, p)) }
	tests := []struct {
		name   string
		params string
		want   map[string][]string
	}{
		{"a path that is a file",
			`{"searches":{"s":{"paths":[` + j("b.conf") + `],"contents":["(?i)loglevel"]}}}`,
			map[string][]string{"s": {"b.conf"}}},
		{"a symbolic link given as path is followed",
			`{"searches":{"s":{"paths":[` + j("loop") + `],"names":["^a\\.txt$"],"options":{"maxdepth":1}}}}`,
			map[string][]string{"s": {"loop/a.txt"}}},
		{"nested paths of one search, each with its depth",
			`{"searches":{"s":{"paths":[` + j("") + `,` + j("sub") + `],"names":["\\.txt$"],"options":{"maxdepth":1}}}}`,
			map[string][]string{"s": {"a.txt", "long.txt", "sub/c.txt"}}},
		{"a symbolic link inside another path, given as a path, is walked on its own",
			`{"searches":{"s":{"paths":[` + j("") + `,` + j("loop") + `],"names":["^a\\.txt$"],"options":{"maxdepth":1}}}}`,
			map[string][]string{"s": {"a.txt", "loop/a.txt"}}},
		{"several searches in one walk",
			`{"searches":{
				"txt":{"paths":[` + j("") + `],"names":["\\.txt$"],"options":{"maxdepth":1}},
				"deep":{"paths":[` + j("sub") + `],"contents":["^deep"]},
				"none":{"paths":[` + j("") + `],"names":["^nothing$"]}}}`,
			map[string][]string{"txt": {"a.txt", "long.txt"}, "deep": {"sub/c.txt", "sub/sub2/d.txt"}, "none": {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, el, _ := run(t, t.Context(), tt.params)
			if !res.Success {
				t.Errorf("Success = false, errors %q", res.Errors)
			}
			if len(el) != len(tt.want) {
				t.Errorf("labels = %d, want %d", len(el), len(tt.want))
			}
			for label, want := range tt.want {
				if got := files(t, el, label, root); !slices.Equal(got, want) {
					t.Errorf("matches of %s = %q, want %q", label, got, want)
				}
			}
		})
	}
}

func TestSearchStatistics(t *testing.T) {
	root := fixture(t)
	rootJ := jsonString(root)
	tests := []struct {
		name       string
		params     string
		want       file.Statistics // ExecTime is not compared
		wantErrors []string        // each must appear in one error
	}{
		{
			name:   "fifo skipped, dangling and looping links fail, loop not followed",
			params: `{"searches":{"s":{"paths":[` + rootJ + `],"options":{"maxdepth":1}}}}`,
			want:   file.Statistics{FilesCount: 5, OpenFailed: 3, Skipped: 1, TotalHits: 5},
			wantErrors: []string{filepath.Join(root, "dangling"), filepath.Join(root, "ping"),
				filepath.Join(root, "pong")},
		},
		{
			name:       "maxerrors",
			params:     `{"searches":{"s":{"paths":[` + rootJ + `],"options":{"maxdepth":1,"maxerrors":1}}}}`,
			want:       file.Statistics{FilesCount: 5, OpenFailed: 3, Skipped: 1, TotalHits: 5},
			wantErrors: []string{"2 more errors not listed"},
		},
		{
			name:       "missing path",
			params:     `{"searches":{"s":{"paths":[` + jsonString(filepath.Join(root, "nothere")) + `]}}}`,
			want:       file.Statistics{OpenFailed: 1},
			wantErrors: []string{"nothere"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, st := run(t, t.Context(), tt.params)
			if !res.Success {
				t.Errorf("Success = false, errors %q", res.Errors)
			}
			if st.ExecTime == "" {
				t.Errorf("exectime is empty")
			}
			st.ExecTime = ""
			if st != tt.want {
				t.Errorf("statistics = %+v, want %+v", st, tt.want)
			}
			all := strings.Join(res.Errors, "\n")
			for _, w := range tt.wantErrors {
				if !strings.Contains(all, w) {
					t.Errorf("errors = %q, want one containing %q", res.Errors, w)
				}
			}
		})
	}
}

func TestReturnSHA256(t *testing.T) {
	root := fixture(t)
	_, el, _ := run(t, t.Context(), `{"searches":{"s":{"paths":[`+jsonString(root)+
		`],"names":["^a\\.txt$"],"options":{"returnsha256":true}}}}`)
	want := file.Match{
		File: filepath.Join(root, "a.txt"),
		FileInfo: file.FileInfo{Size: 24, Mode: "-rw-r--r--",
			SHA256: hexSum([]byte("hello world\nsecond line\n"), "sha256")},
	}
	if len(el["s"]) != 1 {
		t.Fatalf("matches = %+v, want one", el["s"])
	}
	got := el["s"][0]
	fi, err := os.Stat(want.File)
	if err != nil {
		t.Fatal(err)
	}
	want.FileInfo.LastModified = fi.ModTime().Format(file.TimeFormat)
	if got != want {
		t.Errorf("match = %+v, want %+v", got, want)
	}
}

func TestProcFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc")
	}
	exe := regexp.QuoteMeta(filepath.Base(os.Args[0]))
	res, el, _ := run(t, t.Context(), `{"searches":{"s":{"paths":["/proc/self"],"names":["^cmdline$"],"contents":[`+
		jsonString(exe)+`],"options":{"maxdepth":1}}}}`)
	if !res.Success {
		t.Errorf("Success = false, errors %q", res.Errors)
	}
	if len(el["s"]) != 1 || el["s"][0].File != "/proc/self/cmdline" {
		t.Fatalf("matches = %+v, want /proc/self/cmdline", el["s"])
	}
	if size := el["s"][0].FileInfo.Size; size != 0 {
		t.Logf("/proc/self/cmdline reports size %d", size)
	}
}

func TestSearchInterrupted(t *testing.T) {
	root := fixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, _, _ := run(t, ctx, `{"searches":{"s":{"paths":[`+jsonString(root)+`],"contents":["x"]}}}`)
	if res.Success {
		t.Errorf("Success = true, want false")
	}
	if !strings.Contains(strings.Join(res.Errors, "\n"), "interrupted") {
		t.Errorf("errors = %q, want one saying the search was interrupted", res.Errors)
	}
}

// TestOneWalkForAllSearches checks that searches sharing paths, or with
// paths inside each other, walk the tree once: the files checked are the
// files of the tree, not their sum over the searches.
func TestOneWalkForAllSearches(t *testing.T) {
	root := fixture(t)
	_, _, one := run(t, t.Context(), `{"searches":{"s":{"paths":[`+jsonString(root)+`]}}}`)
	_, el, all := run(t, t.Context(), `{"searches":{
		"names":{"paths":[`+jsonString(root)+`],"names":["\\.txt$"]},
		"content":{"paths":[`+jsonString(root)+`],"contents":["hello"]},
		"inner":{"paths":[`+jsonString(filepath.Join(root, "sub"))+`],"contents":["^deep"],"md5":["`+hexSum([]byte("deep content\n"), "md5")+`"]},
		"hash":{"paths":[`+jsonString(root)+`],"sha256":["`+hexSum([]byte("deeper\n"), "sha256")+`"]}}}`)
	if one.FilesCount == 0 || all.FilesCount != one.FilesCount {
		t.Errorf("filescount with four searches = %d, want %d as with one", all.FilesCount, one.FilesCount)
	}
	if all.OpenFailed != one.OpenFailed || all.Skipped != one.Skipped {
		t.Errorf("openfailed %d, skipped %d with four searches; want %d and %d as with one",
			all.OpenFailed, all.Skipped, one.OpenFailed, one.Skipped)
	}
	for label, want := range map[string][]string{
		"names":   {"a.txt", "long.txt", "sub/c.txt", "sub/sub2/d.txt"},
		"content": {"a.txt", "link_a"},
		"inner":   {"sub/c.txt"},
		"hash":    {"sub/sub2/d.txt"},
	} {
		if got := files(t, el, label, root); !slices.Equal(got, want) {
			t.Errorf("matches of %s = %q, want %q", label, got, want)
		}
	}
}

// TestNoContentInResult checks that what a file holds never leaves the
// module: not in the elements, statistics or errors, whatever the options.
func TestNoContentInResult(t *testing.T) {
	root := t.TempDir()
	const secret = "PRIVATE-7f3a9c token=hunter2"
	if err := os.WriteFile(filepath.Join(root, "secret.txt"), []byte("header\n"+secret+"\nfooter\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, el, _ := run(t, t.Context(), `{"searches":{
		"any":{"paths":[`+jsonString(root)+`],"contents":["PRIVATE-","!nothing"],"sizes":[">1"],"options":{"matchany":true,"returnsha256":true}},
		"all":{"paths":[`+jsonString(root)+`],"contents":["token=hunter"],"options":{"returnsha256":true,"macroal":false}}}}`)
	if len(el["any"]) != 1 || len(el["all"]) != 1 {
		t.Fatalf("matches = %+v, want secret.txt in both searches", el)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{secret, "7f3a9c", "hunter2", "header", "footer"} {
		if strings.Contains(string(b), part) {
			t.Errorf("the result holds %q from the file: %s", part, b)
		}
	}
}
