package file_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/file"
	"github.com/migplatform/mig/internal/module/moduletest"
)

func TestPrintResultGolden(t *testing.T) {
	m, ok := module.Lookup(file.Name)
	if !ok {
		t.Fatal("file module is not registered")
	}
	el, err := json.Marshal(file.Elements{
		"iocs": {
			{File: "/usr/bin/nginx", FileInfo: file.FileInfo{Size: 1234567, Mode: "-rwxr-xr-x",
				LastModified: "2016-03-01 10:20:30 +0000 UTC",
				SHA256:       "73b0d95541c84965fa42c3e257bb349957b3be626dec9d55efcc6e0123456789"}},
		},
		"checkforverboselogging": {
			{File: "/etc/ssh/sshd_config", FileInfo: file.FileInfo{Size: 2514, Mode: "-rw-r--r--",
				LastModified: "2015-11-12 08:01:02 -0500 EST"}},
			{File: "/proc/4242/cmdline", FileInfo: file.FileInfo{Size: 0, Mode: "-r--r--r--",
				LastModified: "2016-03-02 00:00:00 +0100 CET"}},
		},
		"usb": {
			{File: "/sys/devices/pci0000:00/usb1/1-1/uevent", FileInfo: file.FileInfo{Size: 4096, Mode: "-rw-r--r--",
				LastModified: "2016-03-02 00:00:00 +0000 UTC"},
				Checks: &file.Checks{Names: []string{"^uevent$"}, Contents: []string{"PRODUCT=20a0/4107"},
					SHA3: []string{"0123"}}},
		},
		"nothing": {},
		"odd names": {
			{File: "/tmp/\ufffd\ufffdname.txt", FileInfo: file.FileInfo{Size: 14, Mode: "-rw-r--r--",
				LastModified: "2016-03-02 00:00:00 +0000 UTC"}},
			{File: "/tmp/x\n\x1b[2Kdb2.example.net /etc/shadow", FileInfo: file.FileInfo{Size: 1, Mode: "-rw-r--r--",
				LastModified: "2016-03-02 00:00:00 +0000 UTC"}},
			{File: "/tmp/tab\there \u202eexe.txt", FileInfo: file.FileInfo{Size: 2, Mode: "-rw-\r--r--",
				LastModified: "2016-03-02 00:00:00 +0000 UTC"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, agent := range []string{"web1.example.net", "db2.example.net"} {
		if err := m.PrintResult(&got, agent, action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
			t.Fatalf("PrintResult: %v", err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(file.Name)
	if !ok {
		t.Fatal("file module is not registered")
	}
	md5s := []string{"eefc66a1e978dc9d825f28702106d4d5", "efa23860086c5d12d3e6b918073c717f"}
	tests := []struct {
		name    string
		args    []string
		want    string // canonical JSON parameters
		wantErr []string
	}{
		{
			name: "seed: boto file",
			args: []string{"-path", "/", "-name", `^\.boto$`, "-content", "abcdef123456"},
			want: `{"searches":{"s1":{"contents":["abcdef123456"],"names":["^\\.boto$"],"paths":["/"]}}}`,
		},
		{
			name: "seed: md5 sweep",
			args: []string{"-path", "/usr", "-path", "/bin", "-md5", md5s[0], "-md5", md5s[1], "-matchany", "-maxdepth", "2"},
			want: `{"searches":{"s1":{"md5":["` + md5s[0] + `","` + md5s[1] + `"],"options":{"matchany":true,"maxdepth":2},"paths":["/usr","/bin"]}}}`,
		},
		{
			name: "all options",
			args: []string{"-path", "/etc", "-sha1", strings.Repeat("a", 40), "-sha2", strings.Repeat("b", 128),
				"-sha256", strings.Repeat("C", 64), "-matchall", "-returnsha256", "-matchlimit", "5", "-maxerrors", "0"},
			want: `{"searches":{"s1":{"options":{"matchall":true,"matchlimit":5,"maxerrors":0,"returnsha256":true},"paths":["/etc"],` +
				`"sha1":["` + strings.Repeat("a", 40) + `"],"sha2":["` + strings.Repeat("b", 128) + `"],"sha256":["` + strings.Repeat("C", 64) + `"]}}}`,
		},
		{
			name: "metadata filters, sha3, macroal, mismatch, decompress",
			args: []string{"-path", "/home", "-name", "^authorized_keys$", "-size", "<1m", "-mode", "^-rw", "-mtime", "<90d",
				"-content", "^ssh-", "-sha3", strings.Repeat("d", 56), "-macroal", "-mismatch", "content", "-mismatch", "sha3", "-decompress"},
			want: `{"searches":{"s1":{"contents":["^ssh-"],"modes":["^-rw"],"mtimes":["<90d"],"names":["^authorized_keys$"],` +
				`"options":{"decompress":true,"macroal":true,"mismatch":["content","sha3"]},"paths":["/home"],` +
				`"sha3":["` + strings.Repeat("d", 56) + `"],"sizes":["<1m"]}}}`,
		},
		{
			name: "sha384 and sha512 flags",
			args: []string{"-path", "/", "-sha384", strings.Repeat("a", 96), "-sha512", strings.Repeat("b", 128)},
			want: `{"searches":{"s1":{"paths":["/"],"sha384":["` + strings.Repeat("a", 96) + `"],"sha512":["` + strings.Repeat("b", 128) + `"]}}}`,
		},
		{name: "sha256 given a sha512 value", args: []string{"-path", "/", "-sha256", strings.Repeat("b", 128)},
			wantErr: []string{"sha256", strings.Repeat("b", 128), "want 64"}},
		{name: "md5 not hex", args: []string{"-path", "/", "-md5", strings.Repeat("x", 32)}, wantErr: []string{strings.Repeat("x", 32), "not hexadecimal"}},
		{name: "bad size", args: []string{"-path", "/", "-size", "10q"}, wantErr: []string{`"10q"`}},
		{name: "bad mtime", args: []string{"-path", "/", "-mtime", "90d"}, wantErr: []string{`"90d"`}},
		{name: "bad mismatch", args: []string{"-path", "/", "-mismatch", "colour"}, wantErr: []string{`"colour"`}},
		{name: "bad md5", args: []string{"-path", "/", "-md5", "abc"}, wantErr: []string{`"abc"`, "md5"}},
		{name: "bad sha256", args: []string{"-path", "/", "-sha256", "xyz"}, wantErr: []string{`"xyz"`}},
		{name: "no path", args: []string{"-name", "x"}, wantErr: []string{"no paths"}},
		{name: "relative path", args: []string{"-path", "tmp"}, wantErr: []string{`"tmp"`}},
		{name: "bad regex", args: []string{"-path", "/", "-content", "a(b"}, wantErr: []string{`"a(b"`}},
		{name: "matchall and matchany", args: []string{"-path", "/", "-matchall", "-matchany"}, wantErr: []string{"both true"}},
		{name: "negative maxdepth", args: []string{"-path", "/", "-maxdepth", "-1"}, wantErr: []string{"maxdepth -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := moduletest.Build(t, m, tt.args, tt.wantErr)
			if raw == nil {
				return
			}
			got, err := action.Canonical(raw)
			if err != nil {
				t.Fatalf("build() = %s, not canonicalizable: %v", raw, err)
			}
			if string(got) != tt.want {
				t.Errorf("build() = %s\nwant      %s", got, tt.want)
			}
		})
	}
}

// FuzzPrintResult feeds the printer elements as an agent may send them:
// it must not panic, and whatever it prints is one line per match, with
// no character that does not print.
func FuzzPrintResult(f *testing.F) {
	for _, seed := range []string{
		`{"s1":[{"file":"/etc/passwd","fileinfo":{"size":1432,"mode":"-rw-r--r--","lastmodified":"2026-11-02 09:14:03 +0000 UTC"}}]}`,
		`{"iocs":[{"file":"/usr/bin/x","fileinfo":{"size":1,"mode":"-rwxr-xr-x","lastmodified":"t","sha256":"ab"},"checks":{"names":["^x$"],"sha2":["ab"]}}]}`,
		`{"a\nb":[{"file":"/tmp/\u001b[31m\n","fileinfo":{"size":-1,"mode":"\u0000","lastmodified":"\r"}}]}`,
		`{"s":[]}`, `{"s":null}`, `null`, `{}`, `[1]`, `{"s":[{"file":1}]}`, ``,
	} {
		f.Add([]byte(seed), "agent1")
	}
	f.Add([]byte(`{"s":[{"file":"/a","fileinfo":{}}]}`), "evil\x1b]0;title\x07")
	m, ok := module.Lookup(file.Name)
	if !ok {
		f.Fatal("file module is not registered")
	}
	f.Fuzz(func(t *testing.T, elements []byte, agent string) {
		var out bytes.Buffer
		err := m.PrintResult(&out, agent, action.Result{Success: true, Elements: json.RawMessage(elements)})
		if err != nil {
			return
		}
		var el file.Elements
		n := 0
		if json.Unmarshal(elements, &el) == nil {
			for _, ms := range el {
				n += len(ms)
			}
		}
		lines := strings.SplitAfter(out.String(), "\n")
		if lines[len(lines)-1] != "" {
			t.Fatalf("output %q does not end with a newline", out.String())
		}
		lines = lines[:len(lines)-1]
		if len(lines) != n {
			t.Errorf("%d lines printed for %d matches:\n%s", len(lines), n, out.String())
		}
		for _, l := range lines {
			for _, r := range strings.TrimSuffix(l, "\n") {
				if !strconv.IsPrint(r) {
					t.Errorf("line %q holds %U, which does not print", l, r)
					break
				}
			}
		}
	})
}
