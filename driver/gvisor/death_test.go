package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/testenv"
)

// TestManager_SandboxDeath: the sandbox process of a running box is
// SIGKILLed on the host (what a runsc crash or the host's OOM killer does);
// the Manager notices within 2 s, fails the box's running exec, marks the
// box stopped with a reason, publishes box.stopped, and Start brings the box
// back with its files.
func TestManager_SandboxDeath(t *testing.T) {
	d, _ := newDriver(t)
	m := newManager(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), box.ID, true) })
	if _, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "echo kept > /kept; sync"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	sub, err := m.Subscribe(ctx, boxapi.EventFilter{BoxID: box.ID, Types: []boxapi.EventType{boxapi.EventBoxStopped}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sleeper, err := m.StartExec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := sandboxPID(t, box.Handle)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case ev := <-sub.C():
		if d := time.Since(killed); d > 2*time.Second {
			t.Errorf("noticed after %v, want within 2s", d)
		}
		if ev.Box == nil || !strings.HasPrefix(ev.Box.ErrorMessage, "Sandbox died: ") {
			t.Errorf("box.stopped event: %+v", ev.Box)
		}
	case <-time.After(10 * time.Second):
		b, _ := m.Get(ctx, box.ID)
		t.Fatalf("no box.stopped event within 10s; box %s", b.Status)
	}
	b, err := m.Get(ctx, box.ID)
	if err != nil || b.Status != boxapi.StatusStopped {
		t.Fatalf("box after the kill: %+v %v", b, err)
	}
	// box.stopped is announced before the box's execs are ended (under
	// the box lock, see Manager.sandboxDied): wait for the exec.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	if e, err := m.WaitExec(wctx, sleeper.ID); err != nil || e.Status == boxapi.ExecRunning {
		t.Errorf("exec of the dead sandbox still running: %+v, %v", e, err)
	}
	wcancel()
	if _, err := m.Start(ctx, box.ID); err != nil {
		t.Fatalf("start after the death: %v", err)
	}
	var out strings.Builder
	e, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"cat", "/kept"}}, &out, nil)
	if err != nil || e.ExitCode == nil || *e.ExitCode != 0 || out.String() != "kept\n" {
		t.Fatalf("exec after start: %v %+v %q", err, e, out.String())
	}
	if b, _ := m.Get(ctx, box.ID); b.ErrorMessage != "" {
		t.Errorf("error_message kept after start: %q", b.ErrorMessage)
	}
}

// sandboxPID finds the runsc-sandbox process of handle on the host.
func sandboxPID(t *testing.T, handle string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), "runsc-sandbox\x00") && strings.Contains(string(b), "/boxes/"+handle+"\x00") {
			return pid
		}
	}
	t.Fatalf("no runsc-sandbox process for %s", handle)
	return 0
}

// TestManager_OOM: a memory hog in a 256 MiB box gets the sandbox killed by
// the host's memory cgroup; the box becomes stopped with "out of memory" in
// its reason within 2 s, an exec then gets the not-running error, and start
// brings the box back.
func TestManager_OOM(t *testing.T) {
	d, _ := newDriver(t)
	if !d.Limits().Memory {
		testenv.Skip(t, "memory limits are not enforced here (rootless or no memory cgroup): nothing kills a hog")
	}
	m := newManager(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), box.ID, true) })
	sub, err := m.Subscribe(ctx, boxapi.EventFilter{BoxID: box.ID, Types: []boxapi.EventType{boxapi.EventBoxStopped}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Doubles a shell string until memory runs out (2 GiB would be 8x the
	// limit).
	hog, err := m.StartExec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "a=0123456789abcdef; while :; do a=$a$a; done"}})
	if err != nil {
		t.Fatal(err)
	}
	var ev boxapi.Event
	select {
	case ev = <-sub.C():
	case <-time.After(2 * time.Minute):
		b, _ := m.Get(ctx, box.ID)
		t.Fatalf("no box.stopped within 2 min of the hog; box %s %q", b.Status, b.ErrorMessage)
	}
	if ev.Box == nil || !strings.Contains(ev.Box.ErrorMessage, "out of memory") {
		t.Fatalf("box.stopped event: %+v, want a reason saying out of memory", ev.Box)
	}
	b, err := m.Get(ctx, box.ID)
	if err != nil || b.Status != boxapi.StatusStopped || !strings.Contains(b.ErrorMessage, "out of memory") {
		t.Fatalf("box after the OOM kill: %+v %v", b, err)
	}
	// The box is announced first; its execs are finished right after.
	deadline := time.Now().Add(30 * time.Second)
	e, _ := m.GetExec(ctx, hog.ID)
	for e.Status == boxapi.ExecRunning && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		e, _ = m.GetExec(ctx, hog.ID)
	}
	if e.Status == boxapi.ExecRunning || e.ErrorMessage == "" {
		t.Errorf("hog exec after the OOM kill: %s %q, want finished with an error", e.Status, e.ErrorMessage)
	}
	var code *boxapi.Error
	if _, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"true"}}, nil, nil); !errors.As(err, &code) || code.Code != boxapi.CodeBoxNotRunning {
		t.Errorf("exec in the OOM-killed box: %v, want BOX_NOT_RUNNING", err)
	}
	if _, err := m.Start(ctx, box.ID); err != nil {
		t.Fatalf("start after the OOM kill: %v", err)
	}
	var out strings.Builder
	e, err = m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "back"}}, &out, nil)
	if err != nil || e.ExitCode == nil || *e.ExitCode != 0 || out.String() != "back\n" {
		t.Fatalf("exec after start: %v %+v %q", err, e, out.String())
	}
}
