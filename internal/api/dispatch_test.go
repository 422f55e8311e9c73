package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// blockingDispatcher holds each dispatch until release is closed and
// reports the context's state when it lets go.
type blockingDispatcher struct {
	started chan struct{}
	release chan struct{}
	ctxErr  chan error
}

func (d *blockingDispatcher) Dispatch(ctx context.Context, _ *action.Action) (int, error) {
	close(d.started)
	<-d.release
	d.ctxErr <- ctx.Err()
	return 0, nil
}

// TestDispatchOutlivesTheClient: an investigator whose connection drops
// (a timeout, a ^C) in the middle of a large fan-out must not stop it
// half-way; otherwise the rest of the fleet waits for the sweep to take
// over the abandoned lease.
func TestDispatchOutlivesTheClient(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	priv, pub, _, err := sign.GenerateKey("admin", "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := NewInvestigator("admin", string(pub), AllPermissions, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateInvestigator(t.Context(), inv); err != nil {
		t.Fatal(err)
	}
	d := &blockingDispatcher{started: make(chan struct{}), release: make(chan struct{}), ctxErr: make(chan error, 1)}
	srv := httptest.NewServer(New(Config{Store: st, Dispatcher: d}))
	t.Cleanup(srv.Close)

	tt := &tester{t: t}
	body := tt.action(nil, signer)
	tok, err := sign.MakeToken(signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/v1/actions", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "MIG-PGP "+tok)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-d.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the dispatch did not start")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	// Give the server time to notice the closed connection.
	time.Sleep(100 * time.Millisecond)
	close(d.release)
	if err := <-d.ctxErr; err != nil {
		t.Fatalf("the dispatch's context ended with the client's connection: %v", err)
	}
}
