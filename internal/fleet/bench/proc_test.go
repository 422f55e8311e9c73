package bench

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "1234 (mig-server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200", 3 * time.Second, true},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 10 2", 30 * time.Millisecond, true},
		{"no name", "1234 mig S 1", 0, false},
		{"short", "1 (x) S 1 2 3", 0, false},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 2 0", 0, false},
		{"negative", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 2 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tt.stat))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseStatCPU = %v, %v; want %v, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	tests := []struct {
		name, status string
		want         int64
		ok           bool
	}{
		{"present", "Name:\tmig\nVmPeak:\t 10 kB\nVmRSS:\t  195748 kB\nThreads: 3\n", 195748, true},
		{"missing", "Name:\tmig\n", 0, false},
		{"bad unit", "VmRSS:\t12 MB\n", 0, false},
		{"bad number", "VmRSS:\tx kB\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatusRSS([]byte(tt.status))
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseStatusRSS = %d, %v; want %d, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("1234 (mig-server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200"))
	f.Add([]byte("VmRSS:\t  195748 kB\n"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := ParseStatCPU(data); err == nil && d < 0 {
			t.Errorf("ParseStatCPU(%q) = %v, negative", data, d)
		}
		if n, err := ParseStatusRSS(data); err == nil && n < 0 {
			t.Errorf("ParseStatusRSS(%q) = %d, negative", data, n)
		}
	})
}

func TestQuantiles(t *testing.T) {
	ps := []progress{{10 * time.Millisecond, 1}, {20 * time.Millisecond, 50}, {30 * time.Millisecond, 99}, {40 * time.Millisecond, 100}}
	tests := []struct {
		q    float64
		n    int
		want time.Duration
	}{
		{0, 100, 10 * time.Millisecond}, // the first result
		{0.5, 100, 20 * time.Millisecond},
		{0.95, 100, 30 * time.Millisecond},
		{0.99, 100, 30 * time.Millisecond},
		{1, 100, 40 * time.Millisecond},
		{1, 101, -1}, // never reached
	}
	for _, tt := range tests {
		if got := timeTo(ps, quantileCount(tt.q, tt.n)); got != tt.want {
			t.Errorf("time to %.2f of %d = %v, want %v", tt.q, tt.n, got, tt.want)
		}
	}
	sorted := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := percentile(sorted, 0.5); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := percentile(sorted, 0.99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
	if got := percentile(nil, 0.5); got != -1 {
		t.Errorf("p50 of nothing = %v, want -1", got)
	}
	u := Summarize([]ProcSample{{At: time.Unix(0, 0), CPU: time.Second, RSSKiB: 2048}, {At: time.Unix(2, 0), CPU: 2 * time.Second, RSSKiB: 1024}})
	if u.CPUCores != 0.5 || u.PeakRSSMi != 2 || u.LastRSSMi != 1 {
		t.Errorf("Summarize = %+v, want 0.5 cores, peak 2 MiB, last 1 MiB", u)
	}
}
