package memory

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseMaps(t *testing.T) {
	const maps = `55d4c8a00000-55d4c8a28000 r--p 00000000 08:01 1234                       /usr/bin/my prog
55d4c8a28000-55d4c8a30000 r-xp 00028000 08:01 1234                       /usr/bin/my prog
7f0000000000-7f0000001000 ---p 00000000 00:00 0 
7f0000001000-7f0000002000 rw-p 00000000 00:00 0                          [heap]
7f1000000000-7f1000100000 r--s 00000000 00:05 77                         /dev/dri/card0
7f2000000000-7f2000001000 r--p 00000000 08:01 99                         /usr/lib/libc.so.6 (deleted)
7ffd0000000-7ffd0004000 r--p 00000000 00:00 0                            [vvar]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`
	regions, paths, err := parseMaps(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range regions {
		got = append(got, fmt.Sprintf("%x-%x %s", r.start, r.end, r.path))
	}
	want := []string{
		"55d4c8a00000-55d4c8a28000 /usr/bin/my prog",
		"55d4c8a28000-55d4c8a30000 /usr/bin/my prog",
		"7f0000001000-7f0000002000 [heap]",
		"7f2000000000-7f2000001000 /usr/lib/libc.so.6 (deleted)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("regions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantPaths := "/usr/bin/my prog|/dev/dri/card0|/usr/lib/libc.so.6 (deleted)"
	if strings.Join(paths, "|") != wantPaths {
		t.Errorf("paths %q, want %q", paths, wantPaths)
	}
	for _, bad := range []string{"zz-10 r--p 0 0 0\n", "10-5 r--p 0 0 0\n", "1000-2000 r--p\n"} {
		if _, _, err := parseMaps(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMaps(%q) succeeded, want an error", bad)
		}
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("55d4c8a00000-55d4c8a28000 r--p 00000000 08:01 1234 /usr/bin/x\n7f0000001000-7f0000002000 rw-p 00000000 00:00 0 [heap]\n"))
	f.Add([]byte("1-2 r 0 0 0 \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		regions, _, err := parseMaps(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, r := range regions {
			if r.end <= r.start || r.end > 1<<63 {
				t.Errorf("region %+v accepted", r)
			}
		}
	})
}
