package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
	}
	ms, err := ReadMigrations(good, "m/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[0].SQL != "A" || ms[1].Name != "0002_more.sql" {
		t.Fatalf("got %+v, want 0001 then 0002", ms)
	}
	bad := []struct {
		fs   fstest.MapFS
		want string
	}{
		{fstest.MapFS{"m/init.sql": {}}, "positive version"},
		{fstest.MapFS{"m/0000_zero.sql": {}}, "positive version"},
		{fstest.MapFS{"m/0001_a.sql": {}, "m/01_b.sql": {}}, "same version 1"},
	}
	for _, tc := range bad {
		if _, err := ReadMigrations(tc.fs, "m/*.sql"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadMigrations(%v) = %v, want an error containing %q", tc.fs, err, tc.want)
		}
	}
}
