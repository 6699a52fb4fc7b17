//go:build linux

package boxagent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/internal/boxagent"
)

// connect serves a real Agent over a pipe (the host's own files stand in
// for the box's) and returns the host side.
func connect(t *testing.T) *agentproto.Conn {
	t.Helper()
	host, agent := net.Pipe()
	a := boxagent.New(boxagent.Hooks{})
	go a.Accept(agent)
	c, err := agentproto.Handshake(context.Background(), host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next reads one change, failing the test after a generous deadline.
func next(t *testing.T, w *agentproto.Watcher) agentproto.WatchEvent {
	t.Helper()
	type res struct {
		ev  agentproto.WatchEvent
		err error
	}
	ch := make(chan res, 1)
	go func() { ev, err := w.Next(); ch <- res{ev, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("next: %v", r.err)
		}
		return r.ev
	case <-time.After(30 * time.Second):
		t.Fatal("no change within 30s")
	}
	return agentproto.WatchEvent{}
}

// The agent's inotify watch reports create, modify, rename (also across
// directories of a recursive watch) and remove exactly, in order, and ends
// the stream when the watched directory goes.
func TestWatch_Changes(t *testing.T) {
	c := connect(t)
	root := t.TempDir()
	w, err := c.Watch(context.Background(), root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	type want = agentproto.WatchEvent
	step := func(do func() error, wants ...want) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatal(err)
		}
		for _, wt := range wants {
			if got := next(t, w); got != wt {
				t.Fatalf("got %+v, want %+v", got, wt)
			}
		}
	}
	a, d, b := filepath.Join(root, "a"), filepath.Join(root, "d"), filepath.Join(root, "d", "b")
	step(func() error { return os.WriteFile(a, []byte("hi"), 0o644) },
		want{Type: agentproto.WatchCreated, Path: a}, want{Type: agentproto.WatchModified, Path: a})
	step(func() error { return os.Mkdir(d, 0o755) }, want{Type: agentproto.WatchCreated, Path: d, Dir: true})
	step(func() error { return os.Rename(a, b) }, want{Type: agentproto.WatchRenamed, OldPath: a, Path: b})
	step(func() error {
		f, err := os.OpenFile(b, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		f.Write([]byte("x"))
		return f.Close()
	}, want{Type: agentproto.WatchModified, Path: b})
	step(func() error { return os.Rename(d, filepath.Join(root, "e")) },
		want{Type: agentproto.WatchRenamed, OldPath: d, Path: filepath.Join(root, "e"), Dir: true})
	eb := filepath.Join(root, "e", "b")
	step(func() error { return os.Remove(eb) }, want{Type: agentproto.WatchRemoved, Path: eb})
	step(func() error { return os.Remove(filepath.Join(root, "e")) },
		want{Type: agentproto.WatchRemoved, Path: filepath.Join(root, "e"), Dir: true})
	step(func() error { return os.Remove(root) }, want{Type: agentproto.WatchRemoved, Path: root, Dir: true})
	if ev, err := w.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the root went: %+v, %v; want io.EOF", ev, err)
	}
}

// A missing path is a not_found error; a relative one invalid.
func TestWatch_Errors(t *testing.T) {
	c := connect(t)
	var re *agentproto.RemoteError
	if _, err := c.Watch(context.Background(), filepath.Join(t.TempDir(), "nope"), false); !errors.As(err, &re) || re.Kind != agentproto.KindNotFound {
		t.Fatalf("missing path: %v", err)
	}
	if _, err := c.Watch(context.Background(), "rel/path", false); !errors.As(err, &re) || re.Kind != agentproto.KindInvalid {
		t.Fatalf("relative path: %v", err)
	}
}

// A host that does not read while the watched tree changes fast gets an
// overflow event with the count of lost changes, then the latest ones: the
// agent holds at most agentproto.WatchQueue changes.
func TestWatch_Overflow(t *testing.T) {
	c := connect(t)
	root := t.TempDir()
	w, err := c.Watch(context.Background(), root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const files = 3 * agentproto.WatchQueue
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(root, "f"+itoa(i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "done"), 0o755); err != nil {
		t.Fatal(err)
	}
	var got, dropped int64
	defer func() { t.Logf("delivered %d, dropped %d", got, dropped) }()
	// Every change is either delivered or counted in an overflow.
	for got+dropped < 2*files+1 {
		ev := next(t, w)
		if ev.Type == agentproto.WatchOverflow {
			dropped += ev.Dropped
			continue
		}
		got++
	}
	if dropped == 0 || got < agentproto.WatchQueue {
		t.Fatalf("no overflow, or too few delivered")
	}
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}
