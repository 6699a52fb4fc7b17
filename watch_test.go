package boxrun_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// TestManager_SandboxDiesUnderBox: the fake's sandbox is marked dead on disk
// behind the Manager's back (what a crash of the runtime leaves); the box
// becomes stopped with a reason within 2 s, box.stopped is published, and
// Start brings it back. The gVisor driver's real OOM case is
// driver/gvisor TestManager_SandboxDeath.
func TestManager_SandboxDiesUnderBox(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{BoxID: b.ID, Types: []boxrun.EventType{boxrun.EventBoxStopped}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	state := filepath.Join(m.Dir(), "fake", "boxes", b.Handle, "state")
	if err := os.WriteFile(state, []byte("stopped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case ev := <-sub.C():
		if ev.Box == nil || ev.Box.Status != boxrun.StatusStopped || ev.Box.ErrorMessage != "Sandbox died: sandbox exited" {
			t.Errorf("event box %+v", ev.Box)
		}
		if d := time.Since(killed); d > 2*time.Second {
			t.Errorf("noticed after %v, want within 2s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no box.stopped event within 5s")
	}
	got, err := m.Get(ctx, b.ID)
	if err != nil || got.Status != boxrun.StatusStopped || got.ErrorCode != string(boxrun.CodeRuntimeError) {
		t.Fatalf("box %+v, %v", got, err)
	}
	if _, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"true"}}, nil, nil); boxrun.ErrorCode(err) != boxrun.CodeBoxNotRunning {
		t.Errorf("exec in the dead box: %v, want BOX_NOT_RUNNING", err)
	}
	if _, err := m.Start(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = m.Get(ctx, b.ID)
	if got.Status != boxrun.StatusRunning || got.ErrorMessage != "" {
		t.Errorf("after start: %s %q", got.Status, got.ErrorMessage)
	}
}
