package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// ClockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux platform Go supports).
const ClockTicks = 100

// ErrProc is wrapped by errors reading /proc.
var ErrProc = errors.New("cannot read process statistics")

// ProcSample is one reading of a process's CPU time and resident memory.
type ProcSample struct {
	At     time.Time
	CPU    time.Duration // user + system time since the process started
	RSSKiB int64
}

// ReadProc reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	now := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("%w: pid %d: %w", ErrProc, pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	rss, err := ParseStatusRSS(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("%w: pid %d: %w", ErrProc, pid, err)
	}
	return ProcSample{At: now, CPU: cpu, RSSKiB: rss}, nil
}

// ParseStatCPU returns utime + stime from the content of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q has no command name", shorten(stat))
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q has %d fields after the command name, want at least 13", shorten(stat), len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("stat CPU time %q is not a count of ticks", s)
		}
		ticks += n
		// A duration holds about 292 years: more ticks than that is not a
		// process's CPU time (and would overflow into a negative one).
		if ticks < 0 || ticks > (int64(math.MaxInt64/time.Second)-1)*ClockTicks {
			return 0, fmt.Errorf("stat CPU time of %d+ ticks is out of range", ticks)
		}
	}
	return time.Duration(ticks/ClockTicks)*time.Second + time.Duration(ticks%ClockTicks)*time.Second/ClockTicks, nil
}

// ParseStatusRSS returns VmRSS in KiB from the content of
// /proc/<pid>/status.
func ParseStatusRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want a number of kB", shorten(line))
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("VmRSS %q is not a number of kB", f[0])
		}
		return n, nil
	}
	return 0, errors.New("status has no VmRSS line")
}

func shorten(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// Usage summarises samples: average CPU over the span as a fraction of one
// core, and the peak and last resident memory.
type Usage struct {
	Span      time.Duration
	CPUCores  float64 // CPU time / wall time
	PeakRSSMi float64
	LastRSSMi float64
}

// Summarize computes Usage over samples in time order.
func Summarize(samples []ProcSample) Usage {
	if len(samples) == 0 {
		return Usage{}
	}
	first, last := samples[0], samples[len(samples)-1]
	u := Usage{Span: last.At.Sub(first.At), LastRSSMi: float64(last.RSSKiB) / 1024}
	if u.Span > 0 {
		u.CPUCores = float64(last.CPU-first.CPU) / float64(u.Span)
	}
	for _, s := range samples {
		u.PeakRSSMi = max(u.PeakRSSMi, float64(s.RSSKiB)/1024)
	}
	return u
}

// sampler reads a process's statistics periodically.
type sampler struct {
	pid   int
	every time.Duration

	mu      sync.Mutex
	samples []ProcSample
	err     error
}

// run samples until ctx ends, once more at the end.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.take()
		select {
		case <-ctx.Done():
			s.take()
			return
		case <-t.C:
		}
	}
}

func (s *sampler) take() {
	p, err := ReadProc(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.samples = append(s.samples, p)
}

// between returns the samples taken in [from, to], with the last one before
// from, so that the span covers from.
func (s *sampler) between(from, to time.Time) []ProcSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ProcSample
	for i, p := range s.samples {
		if p.At.Before(from) {
			if i+1 < len(s.samples) && !s.samples[i+1].At.Before(from) {
				out = append(out, p)
			}
			continue
		}
		if p.At.After(to) {
			break
		}
		out = append(out, p)
	}
	return out
}
