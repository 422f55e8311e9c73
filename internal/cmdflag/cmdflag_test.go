package cmdflag

import (
	"flag"
	"io"
	"testing"
)

func TestIsSet(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want map[string]bool
	}{
		{nil, map[string]bool{"n": false, "s": false, "nosuch": false}},
		{[]string{"-n", "0"}, map[string]bool{"n": true, "s": false}},
		{[]string{"-s="}, map[string]bool{"n": false, "s": true}},
		{[]string{"-n", "3", "-s", "x", "rest", "-n", "4"}, map[string]bool{"n": true, "s": true, "rest": false}},
		{[]string{"--", "-n", "1"}, map[string]bool{"n": false}},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 0, "")
		fs.String("s", "", "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("Parse(%q): %v", tc.args, err)
		}
		for name, want := range tc.want {
			if got := IsSet(fs, name); got != want {
				t.Errorf("args %q: IsSet(%q) = %v, want %v", tc.args, name, got, want)
			}
		}
	}
}
