package amqptest

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestExclusiveWaitsForShared: the exclusive lock is granted only once
// every shared holder has let go, and shared holders do not wait for each
// other.
func TestExclusiveWaitsForShared(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on Windows")
	}
	LockFile = filepath.Join(t.TempDir(), "lock")
	r1, err := lock(false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := lock(false) // a second shared holder is granted at once
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		r, err := Exclusive()
		if err != nil {
			t.Error(err)
			r = func() {}
		}
		got <- r
	}()
	r1()
	select {
	case r := <-got:
		r()
		t.Fatal("the exclusive lock was granted while a shared lock was held")
	case <-time.After(200 * time.Millisecond):
	}
	r2()
	r := <-got
	r()
}
