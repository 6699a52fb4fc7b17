package boxrun_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/internal/crashtest"
)

// TestRunCrashChild is the child half of TestManager_RunCrash: it runs
// only when started by it.
func TestRunCrashChild(t *testing.T) {
	dir := os.Getenv("BOXRUN_RUN_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestManager_RunCrash")
	}
	m := boxruntest.OpenManager(t, dir)
	ctx := context.Background()
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventExecStarted}})
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx, boxrun.RunRequest{Image: "busybox", Cmd: []string{"sleep", "300"}})
	ev := <-sub.C()
	fmt.Printf("READY %s\n", ev.BoxID)
	select {} // wait to be killed
}

// TestManager_RunCrash kills a server during a Run on the generic path
// (Create + Exec, as rootless and on QEMU): the next Open removes the run's
// box (its row, execs and output) and the driver's Prune its sandbox, as
// for a one-shot run; the box is never listed as a box of its own.
func TestManager_RunCrash(t *testing.T) {
	dir := t.TempDir()
	child := crashtest.Start(t, "TestRunCrashChild", []string{"BOXRUN_RUN_CRASH_DIR=" + dir}, "-test.v")
	f := child.MustAwait(t, "the child", "READY", 2, 60*time.Second)
	child.Kill()
	box := f[1]
	fakeBoxes := filepath.Join(dir, "fake", "boxes")
	if ents, _ := os.ReadDir(fakeBoxes); len(ents) == 0 {
		t.Fatal("no sandbox left by the crash: the test proves nothing")
	}

	// A process the child was forking when it died holds its files (the
	// state lock too) until its exec a moment later.
	for deadline := time.Now().Add(10 * time.Second); boxrun.CheckStateDir(dir) != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	if _, err := m.Get(ctx, box); boxrun.ErrorCode(err) != boxrun.CodeBoxNotFound {
		t.Errorf("the interrupted run's box after the restart: %v, want BOX_NOT_FOUND", err)
	}
	if boxes, _ := m.List(ctx, boxrun.BoxFilter{}); len(boxes) != 0 {
		t.Errorf("%d boxes after the restart", len(boxes))
	}
	if ents, _ := os.ReadDir(fakeBoxes); len(ents) != 0 {
		t.Errorf("%d sandboxes left after the restart", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "output")); len(ents) != 0 {
		t.Errorf("%d output logs left", len(ents))
	}
	res, err := m.Run(ctx, boxrun.RunRequest{Image: "busybox", Cmd: []string{"echo", "again"}})
	if err != nil || res.Stdout != "again\n" {
		t.Fatalf("run after the restart: %+v %v", res, err)
	}
}

// TestManager_RunCreateFails checks that a Run whose box fails after its
// row exists (here the image cannot be pulled) leaves no box behind: the
// generic path used to keep it with status error.
func TestManager_RunCreateFails(t *testing.T) {
	imgs, err := image.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	m := boxruntest.NewManager(t, boxrun.WithImages(imgs))
	ctx := ctxT(t)
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventBoxCreated}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_, err = m.Run(ctx, boxrun.RunRequest{Image: "oci:" + filepath.Join(t.TempDir(), "missing"), Cmd: []string{"true"}})
	if boxrun.ErrorCode(err) != boxrun.CodeImagePullFailed {
		t.Fatalf("run of a missing image: %v, want IMAGE_PULL_FAILED", err)
	}
	select {
	case <-sub.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no box was made: the test proves nothing")
	}
	if boxes, _ := m.List(ctx, boxrun.BoxFilter{}); len(boxes) != 0 {
		t.Errorf("%d boxes after a failed run: %+v", len(boxes), boxes[0])
	}
}
