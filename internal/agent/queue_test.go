package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestDroppedMessageLogsTheQueueSize checks that a full queue is reported
// with the size it was made with (Options.QueueSize), not the default.
func TestDroppedMessageLogsTheQueueSize(t *testing.T) {
	var buf bytes.Buffer
	a := &Agent{log: slog.New(slog.NewTextHandler(&buf, nil)), msgs: make(chan relayMsg, 2)}
	for range 3 {
		a.receive("command", []byte("x"))
	}
	if out := buf.String(); !strings.Contains(out, "queue=2") {
		t.Errorf("log %q does not name the queue size 2", out)
	}
}
