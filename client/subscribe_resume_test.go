package client_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
)

// next reads one event or fails after a generous deadline.
func next(t *testing.T, sub boxapi.Subscription) boxapi.Event {
	t.Helper()
	select {
	case ev, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return boxapi.Event{}
}

// A live subscription whose stream is dropped twice reconnects and resumes
// after the last seq it delivered: every box.created arrives once, in order.
func TestClient_SubscribeResume(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/events" {
				mu.Lock()
				queries = append(queries, r.URL.RawQuery)
				drop := len(queries) <= 2
				mu.Unlock()
				if drop {
					w = &dropWriter{ResponseWriter: w, after: 3}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	c := newHandlerClient(t, wrap)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, boxapi.EventFilter{Types: []boxapi.EventType{boxapi.EventBoxCreated}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var want []string
	for range 8 {
		b, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.ID)
	}
	var seq int64
	for i, id := range want {
		ev := next(t, sub)
		if ev.BoxID != id || ev.Seq <= seq {
			t.Fatalf("event %d = %s seq %d, want %s after seq %d", i, ev.BoxID, ev.Seq, id, seq)
		}
		seq = ev.Seq
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err = %v after reconnects", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queries) < 3 || strings.Contains(queries[0], "replay") || !strings.Contains(queries[len(queries)-1], "replay=true") {
		t.Errorf("event requests %q: want a live one, then resumed replays", queries)
	}
}

// A subscription survives a server restart: it reconnects to the new server
// on the same address and resumes by seq (the journal is in the state
// directory), so events of the old and the new server arrive once each.
func TestClient_SubscribeServerRestart(t *testing.T) {
	dir := t.TempDir()
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	run := func(m *boxrun.Manager, ln net.Listener) (stop func()) {
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- httpapi.New(m).Serve(sctx, ln) }()
		return func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("Serve did not return")
			}
		}
	}
	m := boxruntest.OpenManager(t, dir, boxrun.WithLimits(64, 64<<10))
	stop := run(m, ln)
	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, boxapi.EventFilter{Types: []boxapi.EventType{boxapi.EventBoxCreated}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	a, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.BoxID != a.ID {
		t.Fatalf("first event %+v", ev)
	}
	// Restart: the server goes away with its Manager, a new one opens the
	// same state directory and listens on the same address.
	stop()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir, boxrun.WithLimits(64, 64<<10))
	defer m.Close()
	var ln2 net.Listener
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ln2, err = httpapi.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer run(m, ln2)()
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.BoxID != b.ID {
		t.Fatalf("event after the restart = %+v, want box %s (once, no repeat of %s)", ev, b.ID, a.ID)
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}
