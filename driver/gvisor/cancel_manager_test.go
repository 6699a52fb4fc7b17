package gvisor_test

import (
	"context"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// Canceling a long exec through the Manager ends it: the process in the box
// is killed through the agent and the exec is recorded canceled.
func TestManager_CancelExec(t *testing.T) {
	d, _ := newDriver(t)
	m := newManager(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), CPU: 1, MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.StartExec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := m.CancelExec(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	got, err := m.WaitExec(wctx, e.ID)
	if err != nil {
		t.Fatalf("exec still running %v after cancel: %v", time.Since(start), err)
	}
	if got.Status != boxapi.ExecCanceled {
		t.Fatalf("status %s, want canceled", got.Status)
	}
}
