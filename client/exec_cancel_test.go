package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
)

// TestClient_ExecCanceledDuringStart: the caller's ctx ends while the start
// request is in flight but after the server started the command (its reply
// is held back). Exec must still learn the exec's ID and cancel it, instead
// of leaving the command running with no one able to name it. (Found by the
// MCP stdio test under load: a canceled tool call left `sleep 300` running.)
func TestClient_ExecCanceledDuringStart(t *testing.T) {
	m := boxruntest.NewManager(t)
	api := httpapi.New(m)
	started := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/exec") {
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, r) // the server has started the command
			close(started)
			<-release
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := ctxT(t)
	b, err := c.Create(ctx, boxapi.BoxSpec{})
	if err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(ctx)
	type result struct {
		e   *boxapi.Exec
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := c.Exec(cctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "30"}}, nil, nil)
		done <- result{e, err}
	}()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond) // let a client that abandons the request do so
	close(release)
	r := <-done
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Exec: %v, want context.Canceled", r.err)
	}
	xs, err := m.ListExecs(ctx, b.ID)
	if err != nil || len(xs) != 1 {
		t.Fatalf("execs: %v, %v", xs, err)
	}
	if xs[0].Status != boxapi.ExecCanceled {
		t.Errorf("exec after a cancel during its start: %s, want canceled", xs[0].Status)
	}
	if r.e == nil || r.e.ID != xs[0].ID {
		t.Errorf("Exec returned %+v, want the canceled record", r.e)
	}
}
