package ping

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/migplatform/mig/internal/action"
)

// PrintResult writes one line per probe, as MIG prints them:
//
//	<agent> icmp ping of 10.22.75.57 #1: reply in 0.412ms
//	<agent> tcp ping of db.example.net (10.0.0.5):5432 #2: closed in 0.2ms (connection refused)
//	<agent> udp ping of 10.0.0.5:53 #1: maybe open (no answer and no ICMP error in 5s)
//
// then a summary line:
//
//	<agent> icmp ping of 10.22.75.57: 3 of 3 probes reached the destination
//
// It prints nothing for a result that found nothing (no probe reached the
// destination), like every module printer; "mig -show notfound" lists
// those agents.
func (pingModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if !r.FoundAnything || len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("ping module elements: %w", err)
	}
	dest := describe(el)
	for _, p := range el.Probes {
		line := p.Result
		if p.Latency > 0 {
			line += " in " + strconv.FormatFloat(p.Latency, 'f', -1, 64) + "ms"
		}
		if p.Detail != "" {
			line += " (" + p.Detail + ")"
		}
		if _, err := fmt.Fprintf(w, "%s %s ping of %s #%d: %s\n", agentName, el.Protocol, dest, p.Seq, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s %s ping of %s: %d of %d probes reached the destination\n",
		agentName, el.Protocol, dest, el.Reached, len(el.Probes))
	return err
}
