package memory

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Runner runs the memory module with parsed parameters.
type Runner struct {
	searches  []*search
	chunkSize int
	buf       []byte
	// pids, when set, limits the scan to these processes (tests).
	pids []int
}

// Process identifies a process.
type Process struct {
	PID  int    `json:"pid"`
	Name string `json:"name"`
}

// Match is a process that matched a search, with the filters it matched.
type Match struct {
	Process Process `json:"process"`
	Matched []Hit   `json:"matched"`
}

// Elements map each search label to the processes that matched it, sorted
// by pid.
type Elements map[string][]Match

// Statistics count what a scan did.
type Statistics struct {
	// Processes is the number of processes looked at.
	Processes int `json:"processes"`
	// ProcessesSkipped counts processes that vanished or could not be
	// inspected (no permission).
	ProcessesSkipped int `json:"processesskipped"`
	// ProcessesRead counts processes whose memory was read.
	ProcessesRead int `json:"processesread"`
	// RegionsRead and RegionsSkipped count memory regions read to their
	// end and regions (or their rest) that could not be read.
	RegionsRead    int `json:"regionsread"`
	RegionsSkipped int `json:"regionsskipped"`
	// BytesRead is how much memory was read.
	BytesRead int64 `json:"bytesread"`
}

// Run scans the processes and returns those that matched.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	el := Elements{}
	for _, s := range r.searches {
		el[s.label] = []Match{}
	}
	var stats Statistics
	errs, err := r.scanProcesses(ctx, func(p Process, hits map[*search][]Hit) {
		for s, h := range hits {
			el[s.label] = append(el[s.label], Match{Process: p, Matched: h})
		}
	}, &stats)
	res := action.Result{Success: err == nil, Errors: errs}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	for _, ms := range el {
		sort.Slice(ms, func(i, j int) bool { return ms[i].Process.PID < ms[j].Process.PID })
		res.FoundAnything = res.FoundAnything || len(ms) > 0
	}
	res.Elements, _ = json.Marshal(el)
	res.Statistics, _ = json.Marshal(stats)
	return res
}

// FlagLabel is the label of the search that the flags of "mig memory"
// build.
const FlagLabel = "s1"

// SetFlags registers MIG's flags of "mig memory": -name, -lib, -content,
// -bytes (each repeatable), -matchall, -matchany, -offset, -maxlength, plus
// -window. They build one search labelled FlagLabel; the returned function
// parses it as ParseParameters does (see module.BuildFunc).
func (m memoryModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var (
		s                  Search
		matchAll, matchAny bool
	)
	module.StringsVar(fs, &s.Names, "name", "`regex` on process executable names (repeatable)")
	module.StringsVar(fs, &s.Libraries, "lib", "`regex` on loaded libraries and other mapped files (repeatable)")
	module.StringsVar(fs, &s.Contents, "content", "`regex` over process memory (repeatable)")
	module.StringsVar(fs, &s.Bytes, "bytes", "`hex` byte string to find in process memory (repeatable)")
	fs.BoolVar(&matchAll, "matchall", true, "a process must match every filter")
	fs.BoolVar(&matchAny, "matchany", false, "a process must match any one filter")
	fs.Int64Var(&s.Options.Offset, "offset", 0, "skip this many `bytes` of each process's memory")
	fs.Int64Var(&s.Options.MaxLength, "maxlength", 0, "read at most this many `bytes` of each process's memory (0: all)")
	fs.IntVar(&s.Options.Window, "window", 0, fmt.Sprintf("overlap in `bytes` between chunks for -content regexes (default %d)", DefaultWindow))
	return func() (json.RawMessage, module.Runner, error) {
		s.Options.MatchAll = module.Optional(fs, "matchall", &matchAll)
		s.Options.MatchAny = module.Optional(fs, "matchany", &matchAny)
		return module.Build(m, Parameters{Searches: map[string]Search{FlagLabel: s}})
	}
}

// PrintResult writes one line per matching process, as MIG prints them:
//
//	<agent> process '<name>' [pid:<pid>] matched name:'<re>', library:'<re>' (<path>), content:'<re>' (at <addr>) in search '<label>'
//
// Searches are printed in label order. It prints nothing when nothing was
// found.
func (memoryModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("memory module elements: %w", err)
	}
	labels := make([]string, 0, len(el))
	for l := range el {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, label := range labels {
		for _, m := range el[label] {
			parts := make([]string, 0, len(m.Matched))
			for _, h := range m.Matched {
				p := fmt.Sprintf("%s:'%s'", h.Filter, h.Value)
				switch {
				case h.Library != "":
					p += " (" + h.Library + ")"
				case h.Address != "":
					p += " (at " + h.Address + ")"
				}
				parts = append(parts, p)
			}
			if _, err := fmt.Fprintf(w, "%s process '%s' [pid:%d] matched %s in search '%s'\n",
				agentName, m.Process.Name, m.Process.PID, strings.Join(parts, ", "), label); err != nil {
				return err
			}
		}
	}
	return nil
}
