package agentproto_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/agentproto/agentprototest"
	"github.com/hashicorp/yamux"
)

// OutSocketName accepts only short lower-case hex IDs: an ID never makes
// a path.
func TestOutSocketName(t *testing.T) {
	if n, ok := agentproto.OutSocketName("0123abcd"); !ok || n != "x0123abcd.out" {
		t.Errorf("OutSocketName(hex) = %q, %v", n, ok)
	}
	for _, id := range []string{"", "../x", "ABCD", "a/b", "a.b", strings.Repeat("a", 33), "a\x00"} {
		if n, ok := agentproto.OutSocketName(id); ok {
			t.Errorf("OutSocketName(%q) = %q, want refused", id, n)
		}
	}
}

// A hostile agent that offers an output socket nobody asked for (no
// HostOut in the request) breaks the protocol: the exec fails with
// ErrProtocol and the dialer is never called.
func TestHostile_UnaskedHostOut(t *testing.T) {
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{HostOut: true})
	})
	dialed := false
	c.SetOutDialer(func(context.Context, string) (net.Conn, error) { dialed = true; return nil, errors.New("no") })
	_, err := c.Exec(context.Background(), &agentproto.Request{Cmd: []string{"x"}}, nil, nil, nil)
	if !errors.Is(err, agentproto.ErrProtocol) || dialed {
		t.Fatalf("Exec = %v (dialed %v); want ErrProtocol and no dial", err, dialed)
	}
}

// A hostile agent that answers HostOut twice breaks the protocol; the
// connections the host made are closed.
func TestHostile_HostOutTwice(t *testing.T) {
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{HostOut: true})
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{HostOut: true})
	})
	var mu sync.Mutex // the two connections are dialed at once
	var peers []net.Conn
	c.SetOutDialer(func(context.Context, string) (net.Conn, error) {
		a, b := net.Pipe()
		go func() { buf := make([]byte, 1); b.Read(buf) }()
		mu.Lock()
		peers = append(peers, a)
		mu.Unlock()
		return a, nil
	})
	_, err := c.Exec(context.Background(), &agentproto.Request{Cmd: []string{"x"}, HostOut: true}, nil, nil, nil)
	if !errors.Is(err, agentproto.ErrProtocol) {
		t.Fatalf("Exec = %v; want ErrProtocol", err)
	}
	if len(peers) != 2 {
		t.Fatalf("dialed %d times, want 2", len(peers))
	}
	for _, p := range peers {
		if _, err := p.Write([]byte("x")); err == nil {
			t.Errorf("an output connection was left open")
		}
	}
}

// A dialer that fails makes the exec fail before it started (not a
// RemoteError, so a driver may run it another way).
func TestHostOut_DialFails(t *testing.T) {
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{HostOut: true})
		var buf [1]byte
		st.Read(buf[:])
	})
	c.SetOutDialer(func(context.Context, string) (net.Conn, error) { return nil, errors.New("refused") })
	_, err := c.Exec(context.Background(), &agentproto.Request{Cmd: []string{"x"}, HostOut: true}, nil, nil, nil)
	var re *agentproto.RemoteError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Exec = %v; want the dial error", err)
	}
}

// A hostile agent that claims a prepared output pair nobody named breaks
// the protocol: the exec fails with ErrProtocol and nothing is dialed.
func TestHostile_UnaskedOutPair(t *testing.T) {
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{PID: 7, OutPair: true})
	})
	dialed := false
	c.SetOutDialer(func(context.Context, string) (net.Conn, error) { dialed = true; return nil, errors.New("no") })
	_, err := c.Exec(context.Background(), &agentproto.Request{Cmd: []string{"x"}, HostOut: true}, nil, nil, nil)
	if !errors.Is(err, agentproto.ErrProtocol) || dialed {
		t.Fatalf("Exec = %v (dialed %v); want ErrProtocol and no dial", err, dialed)
	}
}

// A hostile agent that answers a preparation with anything but the
// protocol's two results gets no pair kept and no further preparations:
// execs go on as before.
func TestHostile_PrepareOutRefused(t *testing.T) {
	var mu sync.Mutex
	prepares := 0
	c := agentprototest.DialRequests(t, func(st *yamux.Stream, req *agentproto.Request) {
		if req.Op == agentproto.OpPrepareOut {
			mu.Lock()
			prepares++
			mu.Unlock()
			agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{PID: 1}) // no HostOut
			return
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{PID: 7})
		agentproto.WriteJSON(st, agentproto.FrameExit, agentproto.Exit{Code: 0})
	})
	c.SetOutDialer(func(context.Context, string) (net.Conn, error) { return nil, errors.New("no dial expected") })
	c.PrepareOut()
	for deadline := time.Now().Add(5 * time.Second); c.ReadyPairToken() == "" && time.Now().Before(deadline); {
		mu.Lock()
		n := prepares
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	for range 3 {
		c.PrepareOut()
		p, err := c.Exec(context.Background(), &agentproto.Request{Cmd: []string{"x"}, HostOut: true}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil || p.Prepared() {
			t.Fatalf("exec: %d %v prepared %v", code, err, p.Prepared())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if prepares != 1 || c.ReadyPairToken() != "" {
		t.Errorf("%d preparations after a refusal (want 1), ready %q", prepares, c.ReadyPairToken())
	}
}
