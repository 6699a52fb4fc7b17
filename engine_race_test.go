package boxrun_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/sandbox"
)

// A second Open of a state directory in the same process fails at once,
// names this process, and changes nothing: the first Manager's running exec
// is still running. After Close the directory opens again.
func TestOpen_StateLockedSameProcess(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = boxrun.Open(dir, boxrun.WithDriver(boxruntest.NewFakeDriver(filepath.Join(dir, "fake"))))
	if !errors.Is(err, boxrun.ErrStateLocked) {
		t.Fatalf("second Open = %v, want ErrStateLocked", err)
	}
	var le *boxrun.StateLockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprint("pid ", os.Getpid())) {
		t.Fatalf("second Open = %v, want the holder's pid %d", err, os.Getpid())
	}
	if got, err := m.GetExec(ctx, e.ID); err != nil || got.Status != boxrun.ExecRunning {
		t.Fatalf("exec after a refused Open = %+v, %v; want still running", got, err)
	}
	if _, err := m.CancelExec(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := boxruntest.OpenManager(t, dir)
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLockChild is the child half of TestOpen_StateLockedOtherProcess.
func TestLockChild(t *testing.T) {
	dir := os.Getenv("BOXRUN_LOCK_DIR")
	if dir == "" {
		t.Skip("child process of TestOpen_StateLockedOtherProcess")
	}
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	fmt.Println("READY")
	select {} // wait to be killed
}

// Another process holding the directory makes Open fail with its PID; once
// that process is killed (SIGKILL: no Close), the directory opens.
func TestOpen_StateLockedOtherProcess(t *testing.T) {
	dir := t.TempDir()
	child := crashtest.Start(t, "TestLockChild", []string{"BOXRUN_LOCK_DIR=" + dir})
	child.MustAwait(t, "the child", "READY", 1, 30*time.Second)
	cmd := child.Cmd
	_, err := boxrun.Open(dir, boxrun.WithDriver(boxruntest.NewFakeDriver(filepath.Join(dir, "fake"))))
	var le *boxrun.StateLockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid || !errors.Is(err, boxrun.ErrStateLocked) {
		t.Fatalf("Open while another process holds it = %v, want pid %d", err, cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("message %q does not name pid %d", err, cmd.Process.Pid)
	}
	child.Kill()
	m := boxruntest.OpenManager(t, dir)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// Execs started while the box is being removed either fail to start or are
// canceled by the removal: afterwards the database holds no exec, event or
// journal-less row of the removed box, and every foreign key holds.
func TestManager_ExecStartRacesRemove(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := ctxT(t)
	for round := range 10 {
		b := mustCreate(t, m, boxrun.BoxSpec{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo hi; sleep 5"}})
				if err != nil && !errors.Is(err, boxrun.ErrNotFound) && !errors.Is(err, boxrun.ErrConflict) {
					t.Errorf("round %d: start exec = %v", round, err)
				}
			}()
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		if err := m.Remove(ctx, b.ID, true); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		execs, err := m.ListExecs(ctx, b.ID)
		if !errors.Is(err, boxrun.ErrNotFound) {
			t.Fatalf("round %d: execs of a removed box = %v, %v", round, execs, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for q, want := range map[string]int64{
		"SELECT COUNT(*) FROM execs":                    0,
		"SELECT COUNT(*) FROM events":                   0,
		"SELECT COUNT(*) FROM pragma_foreign_key_check": 0,
	} {
		var n int64 = -1
		if err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
		}); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
}

// gatedImages holds Pull after the image is fetched until gate closes,
// widening the window between resolving an image and recording its digest.
type gatedImages struct {
	sandbox.ImageStore
	pulled chan struct{}
	gate   chan struct{}
	once   sync.Once
}

func (g *gatedImages) Pull(ctx context.Context, ref string, p func(boxrun.PullProgress)) (*sandbox.Image, error) {
	img, err := g.ImageStore.Pull(ctx, ref, p)
	g.once.Do(func() { close(g.pulled); <-g.gate })
	return img, err
}

// A prune that runs while a box is being created from an image waits for
// the box to record the image, and then keeps it.
func TestManager_PruneWaitsForCreate(t *testing.T) {
	host := imagetest.Registry(t)
	img := imagetest.Image(t, v1.Config{}, imagetest.Layer(t, imagetest.File("hello.txt", 0o644, "hi")))
	ref := imagetest.Push(t, host, "test/prune:v1", img)
	dir := t.TempDir()
	store, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedImages{ImageStore: store, pulled: make(chan struct{}), gate: make(chan struct{})}
	m := boxruntest.OpenManager(t, dir, boxrun.WithImages(g), boxrun.WithLimits(8, 8192))
	defer m.Close()
	ctx := ctxT(t)
	created := make(chan error, 1)
	go func() { _, err := m.Create(ctx, boxrun.BoxSpec{Image: ref}); created <- err }()
	<-g.pulled
	if err := m.RemoveImage(ctx, ref); err != nil { // only the box's digest keeps it now
		t.Fatal(err)
	}
	pruned := make(chan int, 1)
	go func() {
		n, err := m.PruneImages(ctx)
		if err != nil {
			t.Error(err)
		}
		pruned <- n
	}()
	select {
	case n := <-pruned:
		t.Fatalf("prune finished (%d) while a create was using the image", n)
	case <-time.After(300 * time.Millisecond):
	}
	close(g.gate)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if n := <-pruned; n != 0 {
		t.Fatalf("prune removed %d images, want the one in use kept", n)
	}
}
