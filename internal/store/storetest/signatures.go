package storetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// testResultSignatures checks that a store keeps each result's signature
// as the agent sent it, and the result so that the signature still
// verifies when read back: the client verifies what the store returns.
func testResultSignatures(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	a := newAction(91, baseTime.Add(-1e12), baseTime.Add(1e12))
	mustCreateAction(t, s, a)
	keys := make([]ed25519.PrivateKey, 3)
	agents := make([]string, len(keys))
	for i := range keys {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i], agents[i] = k, action.AgentID(k.Public().(ed25519.PublicKey))
	}
	cmds := commandsFor(a.ID, 9100, agents...)
	mustCreateCommands(t, s, cmds)
	sign := func(i int, m action.ResultMessage) action.ResultMessage {
		t.Helper()
		sig, err := action.SignResult(keys[i], m.Fields(), action.ResultSignature{Name: "host-" + agents[i][:4] + " <é>",
			ActionHash: action.ActionHash([]byte("encoding")), Started: m.Started, Finished: m.Finished})
		if err != nil {
			t.Fatal(err)
		}
		m.Signature = sig
		return m
	}
	tricky := result(agents[0], cmds[0].ID, a.ID, action.CmdSuccess, true)
	tricky.Results[0].Elements = json.RawMessage("[ {\"path\": \"/srv/<a&b>\u2028\", \"size\": 1.50e3, \"Size\": -0, \"k\": \"\\u00e9\\ud83d\\ude00\"} ]")
	tricky.Results[0].Statistics = nil
	refused := action.ResultMessage{V: action.ProtocolVersion, AgentID: agents[1], CommandID: cmds[1].ID, ActionID: a.ID,
		Status: action.CmdFailed, Code: action.CodeBadSignature, Error: "signature 0: \"bad\"\ttab",
		Started: baseTime, Finished: baseTime}
	unsigned := result(agents[2], cmds[2].ID, a.ID, action.CmdSuccess, false)
	sent := []action.ResultMessage{sign(0, tricky), sign(1, refused), unsigned}
	storeResults(t, s, sent...)
	// A late result with another signature changes nothing.
	late := sign(0, result(agents[0], cmds[0].ID, a.ID, action.CmdFailed, false))
	storeResults(t, s, late)

	check := func(how string, got action.Command, want action.ResultMessage) {
		t.Helper()
		if d := diff(want.Signature, got.Signature); d != "" {
			t.Errorf("%s: command %d signature (-sent +stored):\n%s", how, got.ID, d)
		}
		if want.Signature == nil {
			return
		}
		if err := action.VerifyResult(got.ResultFields(), got.Signature); err != nil {
			t.Errorf("%s: command %d as stored does not verify: %v", how, got.ID, err)
		}
	}
	for i, want := range sent {
		got, err := s.Command(ctx, cmds[i].ID)
		if err != nil {
			t.Fatalf("Command(%d): %v", cmds[i].ID, err)
		}
		check("Command", *got, want)
	}
	list, err := s.Commands(ctx, store.CommandQuery{ActionID: a.ID, WithAction: true})
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	if len(list) != len(sent) {
		t.Fatalf("Commands returned %d commands, want %d", len(list), len(sent))
	}
	for i, want := range sent {
		check("Commands", list[i], want)
	}
	bare, err := s.Commands(ctx, store.CommandQuery{ActionID: a.ID, NoResults: true})
	if err != nil {
		t.Fatalf("Commands without results: %v", err)
	}
	for _, c := range bare {
		if c.Signature != nil || c.Results != nil {
			t.Errorf("Commands with NoResults returned command %d with results or a signature", c.ID)
		}
	}
	// The store returns exactly what verifies: a changed value does not.
	got, err := s.Command(ctx, cmds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Results[0].FoundAnything = false
	if err := action.VerifyResult(got.ResultFields(), got.Signature); err == nil {
		t.Errorf("a stored result changed after reading still verifies")
	}
}
