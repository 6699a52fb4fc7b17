package boxrun_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/crashtest"
)

// waitEvent waits (bounded) for the next event of sub with type typ.
func waitEvent(t *testing.T, sub boxrun.Subscription, typ boxrun.EventType, limit time.Duration) boxrun.Event {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription ended waiting for %s: %v", typ, sub.Err())
			}
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", typ, limit)
		}
	}
}

func TestLifetime_TTLStops(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventBoxExpired}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b, err := m.Create(ctx, boxrun.BoxSpec{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := m.Lifetime(ctx, b.ID)
	if err != nil || lt.TTLMS != 1000 || lt.ExpiresAt == nil || !lt.ExpiresAt.Equal(b.StartedAt.Add(time.Second)) || lt.OnExpire != boxrun.ExpireStop {
		t.Fatalf("Lifetime = %+v, %v", lt, err)
	}
	ev := waitEvent(t, sub, boxrun.EventBoxExpired, 10*time.Second)
	if ev.BoxID != b.ID || ev.Box == nil || ev.Box.Status != boxrun.StatusStopped || ev.Seq == 0 {
		t.Fatalf("expired event = %+v", ev)
	}
	got, err := m.Get(ctx, b.ID)
	if err != nil || got.Status != boxrun.StatusStopped {
		t.Fatalf("box after ttl = %+v, %v", got, err)
	}
	if d := got.StoppedAt.Sub(got.StartedAt); d < time.Second {
		t.Errorf("stopped %s after start, before the ttl", d)
	}
	if lt, _ := m.Lifetime(ctx, b.ID); lt.ExpiredBy != "ttl" || lt.ExpiresAt != nil {
		t.Errorf("Lifetime after expiry = %+v", lt)
	}
	// A new start gets a new ttl.
	if _, err := m.Start(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, boxrun.EventBoxExpired, 10*time.Second)
}

func TestLifetime_IdleResetByActivity(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventBoxExpired}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const idle = 1500 * time.Millisecond
	b, err := m.Create(ctx, boxrun.BoxSpec{IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	// Execs every 600 ms for well over the idle timeout keep it running.
	start := time.Now()
	for time.Since(start) < 2*idle {
		time.Sleep(600 * time.Millisecond)
		if _, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"true"}}, nil, nil); err != nil {
			t.Fatalf("exec %s after start: %v", time.Since(start), err)
		}
	}
	// A running exec keeps it busy however long it runs.
	if _, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "2"}}, nil, nil); err != nil {
		t.Fatalf("long exec: %v", err)
	}
	// So does a copy.
	if err := m.UploadFile(ctx, b.ID, "/tmp/x", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	lastActivity := time.Now()
	ev := waitEvent(t, sub, boxrun.EventBoxExpired, 10*time.Second)
	if since := time.Since(lastActivity); since < idle-100*time.Millisecond {
		t.Errorf("expired %s after the last activity, before the idle timeout", since)
	}
	if ev.BoxID != b.ID {
		t.Fatalf("expired %s", ev.BoxID)
	}
	if lt, _ := m.Lifetime(ctx, b.ID); lt.ExpiredBy != "idle" {
		t.Errorf("ExpiredBy = %q, want idle", lt.ExpiredBy)
	}
}

func TestLifetime_RemoveAndDefaults(t *testing.T) {
	m := boxruntest.NewManager(t, boxrun.WithDefaultLifetime(700*time.Millisecond, 0))
	ctx := ctxT(t)
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventBoxExpired, boxrun.EventBoxRemoved}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b, err := m.Create(ctx, boxrun.BoxSpec{OnExpire: boxrun.ExpireRemove})
	if err != nil {
		t.Fatal(err)
	}
	if lt, err := m.Lifetime(ctx, b.ID); err != nil || lt.TTLMS != 700 || lt.OnExpire != boxrun.ExpireRemove {
		t.Fatalf("Lifetime with the default = %+v, %v", lt, err)
	}
	ev := waitEvent(t, sub, boxrun.EventBoxExpired, 10*time.Second)
	if ev.BoxID != b.ID {
		t.Fatalf("expired %s", ev.BoxID)
	}
	if ev := waitEvent(t, sub, boxrun.EventBoxRemoved, 10*time.Second); ev.BoxID != b.ID {
		t.Fatalf("removed %s", ev.BoxID)
	}
	if _, err := m.Get(ctx, b.ID); boxrun.ErrorCode(err) != boxrun.CodeBoxNotFound {
		t.Fatalf("Get after expiry: %v", err)
	}

	// Bad input creates nothing.
	for _, spec := range []boxrun.BoxSpec{{TTL: -time.Second}, {IdleTimeout: -1}, {OnExpire: "explode"}} {
		if _, err := m.Create(ctx, spec); boxrun.ErrorCode(err) != boxrun.CodeValidationError {
			t.Errorf("Create(%+v) = %v, want VALIDATION_ERROR", spec, err)
		}
	}
	if boxes, _ := m.List(ctx, boxrun.BoxFilter{}); len(boxes) != 0 {
		t.Errorf("%d boxes left after bad creates", len(boxes))
	}
}

// TestLifetimeCrashChild is the child half of TestLifetime_SurvivesCrash.
func TestLifetimeCrashChild(t *testing.T) {
	dir := os.Getenv("BOXRUN_LIFETIME_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestLifetime_SurvivesCrash")
	}
	m := boxruntest.OpenManager(t, dir)
	b, err := m.Create(context.Background(), boxrun.BoxSpec{TTL: crashTTL})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s\n", b.ID)
	select {} // wait to be killed
}

// crashTTL is the ttl of TestLifetime_SurvivesCrash's box: long enough that
// the reopened Manager's timer is still pending on a loaded machine.
const crashTTL = 8 * time.Second

// TestLifetime_SurvivesCrash kills the server with SIGKILL right after it
// created a box with a ttl, reopens 1.5 s later, and checks that the timer
// rebuilt from SQLite fires at the box's start plus its ttl (the restart did
// not extend it) and that the box then expires by its ttl. The deadline is
// checked as recorded, not by measuring when the stop happened: a loaded
// machine may take seconds to reopen.
func TestLifetime_SurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	child := crashtest.Start(t, "TestLifetimeCrashChild", []string{"BOXRUN_LIFETIME_CRASH_DIR=" + dir})
	f := child.MustAwait(t, "the child", "READY", 2, 60*time.Second)
	boxID := f[1]
	child.Kill()
	time.Sleep(1500 * time.Millisecond)

	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	if lt, err := m.Lifetime(ctx, boxID); err != nil {
		t.Fatal(err)
	} else if lt.ExpiresAt != nil { // nil: it expired already (a very slow reopen)
		b, err := m.Get(ctx, boxID)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.StartedAt.Add(crashTTL); lt.ExpiresAt.Sub(want).Abs() > time.Millisecond {
			t.Errorf("after restart the ttl fires at %s, want %s (start + ttl)", lt.ExpiresAt, want)
		}
	}
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{BoxID: boxID, Types: []boxrun.EventType{boxrun.EventBoxExpired}, Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitEvent(t, sub, boxrun.EventBoxExpired, 30*time.Second)
	b, err := m.Get(ctx, boxID)
	if err != nil || b.Status != boxrun.StatusStopped {
		t.Fatalf("box after restart = %+v, %v", b, err)
	}
	if d := b.StoppedAt.Sub(b.StartedAt); d < crashTTL {
		t.Errorf("box stopped after %s, before its %s ttl", d, crashTTL)
	}
	if lt, err := m.Lifetime(ctx, boxID); err != nil || lt.ExpiredBy != "ttl" {
		t.Errorf("lifetime after expiry = %+v, %v; want expired by ttl", lt, err)
	}
}
