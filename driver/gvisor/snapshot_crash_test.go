package gvisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/internal/testenv"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// snapCrashEnv tells a re-executed test binary to act as the server that
// TestManager_SnapshotServerCrash SIGKILLs (TestSnapCrashChild).
const snapCrashEnv = "BOXRUN_GVISOR_SNAP_CRASH_DIR"

// openCrashManager opens the Manager a snapshot crash child and its parent
// share: gVisor under dir/gvisor, with a warm pool of image when pool.
func openCrashManager(t *testing.T, dir, img string, pool bool) *boxrun.Manager {
	t.Helper()
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		t.Fatal(err)
	}
	images, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	opts := []boxrun.Option{boxrun.WithDriver(d), boxrun.WithImages(images), boxrun.WithLimits(64, 64<<10)}
	if pool {
		opts = append(opts, boxrun.WithPool(boxrun.PoolSpec{Image: img, CPU: 1, MemoryMB: 256, Size: 2}))
	}
	m, err := boxrun.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSnapCrashChild is not a test: it is the server that
// TestManager_SnapshotServerCrash starts and SIGKILLs in the middle of one
// operation (env _OP): it prepares, prints READY, then runs the operation
// until it is killed.
func TestSnapCrashChild(t *testing.T) {
	dir := os.Getenv(snapCrashEnv)
	if dir == "" {
		t.Skip("helper process for TestManager_SnapshotServerCrash")
	}
	img := "dir:" + os.Getenv(snapCrashEnv+"_ROOTFS")
	op := os.Getenv(snapCrashEnv + "_OP")
	m := openCrashManager(t, dir, img, op == "pool")
	ctx := context.Background()
	if op == "pool" {
		waitPoolReady(t, m, img, 2)
		fmt.Println("READY")
		for { // every create takes a pooled sandbox and starts a refill
			b, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 256})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("CREATED", b.ID)
			waitPoolReady(t, m, img, 2)
		}
	}
	src, _ := counterBox(t, m, "crash-src")
	switch op {
	case "checkpoint":
		fmt.Println("READY")
		for {
			s, err := m.Checkpoint(ctx, src.ID, boxapi.CheckpointOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("SNAPSHOT", s.ID)
			if _, err := m.Start(ctx, src.ID); err != nil {
				t.Fatal(err)
			}
		}
	case "restore":
		s, err := m.Checkpoint(ctx, src.ID, boxapi.CheckpointOptions{LeaveRunning: true})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("READY")
		for {
			b, err := m.Restore(ctx, s.ID, boxapi.RestoreSpec{})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("RESTORED", b.ID)
		}
	case "fork":
		fmt.Println("READY")
		for {
			bs, err := m.Fork(ctx, src.ID, 3)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("FORKED", len(bs))
		}
	}
	t.Fatalf("unknown op %q", op)
}

// boxDirsWith returns the handles under dir/gvisor/boxes whose file name (in
// the box dir) exists.
func boxDirsWith(dir, name string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(dir, "gvisor", "boxes"))
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, "gvisor", "boxes", e.Name(), name)); err == nil {
			out[e.Name()] = true
		}
	}
	return out
}

// TestManager_SnapshotServerCrash SIGKILLs a real server process (a
// Manager over gVisor) in the middle of a checkpoint (while runsc saves
// the paused box), a restore (while runsc restores the new sandbox), a
// fork (between its restores) and a warm-pool refill (while the pooled
// sandbox starts). A box whose checkpoint was interrupted is stopped with
// its files (its memory state is unknown). The server's runsc children are not killed with it, as
// after a real crash. After the next Open on the same state: SQLite's
// integrity check passes; no snapshot intent row is left and the snapshot
// files are exactly those of the listed (and hibernated) snapshots; every
// sandbox directory, runsc process and mount under the driver belongs to
// a box row; running boxes take execs and stopped ones start; a snapshot
// taken before the crash still restores with its counter continuing; and
// once every box is removed nothing is left on the host.
func TestManager_SnapshotServerCrash(t *testing.T) {
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, "gvisor driver unsupported here: "+err.Error())
	}
	testenv.NeedRoot(t) // checkpoints are refused rootless (rootlessRefusesSnapshots)
	rootfs := busyboxRootfs(t)
	for _, op := range []string{"checkpoint", "restore", "fork", "pool"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			// When to kill: the first sign of the operation under way.
			var midway func(before map[string]bool) bool
			switch op {
			case "checkpoint": // box.json is written just before runsc checkpoint
				midway = func(map[string]bool) bool {
					ms, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "box.json"))
					return len(ms) > 0
				}
			case "restore", "pool": // a new sandbox's bundle: runsc restore / create runs
				midway = func(before map[string]bool) bool {
					for h := range boxDirsWith(dir, "config.json") {
						if !before[h] {
							return true
						}
					}
					return false
				}
			case "fork": // the second fork's sandbox is being made
				midway = func(before map[string]bool) bool {
					n := 0
					for h := range boxDirsWith(dir, "") {
						if !before[h] {
							n++
						}
					}
					return n >= 2
				}
			}
			seen := crashChildAt(t, dir, rootfs, op, midway)
			checkAfterSnapshotCrash(t, dir, "dir:"+rootfs, op, seen)
		})
	}
}

// crashChildAt runs TestSnapCrashChild for op on dir, SIGKILLs it as soon
// as midway holds (polled), and returns every sandbox handle seen.
func crashChildAt(t *testing.T, dir, rootfs, op string, midway func(before map[string]bool) bool) map[string]bool {
	t.Helper()
	child := crashtest.Start(t, "TestSnapCrashChild", []string{snapCrashEnv + "=" + dir, snapCrashEnv + "_ROOTFS=" + rootfs, snapCrashEnv + "_OP=" + op}, "-test.v", "-test.timeout=10m")
	child.MustAwait(t, "the server", "READY", 0, 3*time.Minute)
	before := boxDirsWith(dir, "")
	seen := map[string]bool{}
	for h := range before {
		seen[h] = true
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !midway(before) {
		for h := range boxDirsWith(dir, "") {
			seen[h] = true
		}
		if time.Now().After(deadline) {
			child.Kill()
			t.Fatalf("%s never got under way", op)
		}
		time.Sleep(2 * time.Millisecond)
	}
	child.Kill()
	for h := range boxDirsWith(dir, "") {
		seen[h] = true
	}
	done := child.Rest()
	t.Logf("%s: killed mid-operation; the server had printed %v after READY; sandboxes seen: %d", op, done, len(seen))
	return seen
}

// checkAfterSnapshotCrash opens a Manager on the crashed server's dir and
// checks what TestManager_SnapshotServerCrash promises.
func checkAfterSnapshotCrash(t *testing.T, dir, img, op string, seen map[string]bool) {
	t.Helper()
	ctx := context.Background()
	m := openCrashManager(t, dir, img, false)
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()
	// SQLite is consistent.
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	var intents int
	err = sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check;", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		integrity += s.ColumnText(0)
		return nil
	}})
	if err == nil {
		err = sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM snapshots WHERE state = 'creating';", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			intents = s.ColumnInt(0)
			return nil
		}})
	}
	conn.Close()
	if err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q %v", integrity, err)
	}
	if intents != 0 {
		t.Errorf("%d snapshot intent rows left", intents)
	}
	// Snapshot files: exactly the listed ones (and a hibernated box's).
	snaps, err := m.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	if len(ents) != len(snaps) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("snapshot dirs %v, listed snapshots %d", names, len(snaps))
	}
	// Every sandbox belongs to a box row; boxes work.
	boxes, err := m.List(ctx, boxapi.BoxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	handles := map[string]bool{}
	for _, b := range boxes {
		if b.Handle != "" {
			handles[b.Handle] = true
		}
	}
	for h := range boxDirsWith(dir, "") {
		seen[h] = true
		if !handles[h] {
			t.Errorf("sandbox dir %s belongs to no box", h)
		}
	}
	for h := range seen {
		if handles[h] {
			continue
		}
		if ps := waitNoProcesses(t, h); len(ps) > 0 {
			t.Errorf("processes of sandbox %s (no box) left: %v", h, ps)
		}
	}
	for _, mp := range mountsUnder(t, filepath.Join(dir, "gvisor")) {
		owned := strings.HasSuffix(mp, "null-netns")
		for h := range handles {
			owned = owned || strings.Contains(mp, h)
		}
		if !owned {
			t.Errorf("mount %s belongs to no box", mp)
		}
	}
	for _, b := range boxes {
		switch b.Status {
		case boxapi.StatusRunning:
		case boxapi.StatusStopped:
			if _, err := m.Start(ctx, b.ID); err != nil {
				t.Errorf("start %s (%s) after the crash: %v", b.ID, b.Name, err)
				continue
			}
		default:
			t.Errorf("box %s (%s) after the crash: %s %q", b.ID, b.Name, b.Status, b.ErrorMessage)
			continue
		}
		if out, code := mexec(t, m, b.ID, "echo", "alive"); code != 0 || out != "alive\n" {
			t.Errorf("exec in %s (%s) after the crash: %q %d", b.ID, b.Name, out, code)
		}
		if out, _ := mexec(t, m, b.ID, "cat", "/data.txt"); b.Name == "crash-src" && out != "kept\n" {
			t.Errorf("the source box's file after the crash: %q", out)
		}
	}
	t.Logf("%s: after the restart %d boxes, %d snapshots", op, len(boxes), len(snaps))
	// A snapshot made before the crash restores.
	for _, s := range snaps {
		r, err := m.Restore(ctx, s.ID, boxapi.RestoreSpec{})
		if err != nil {
			t.Errorf("restore %s after the crash: %v", s.ID, err)
			continue
		}
		mcount(t, m, r.ID, 1)
		break
	}
	// Everything removed: nothing left.
	boxes, _ = m.List(ctx, boxapi.BoxFilter{})
	for _, b := range boxes {
		if err := m.Remove(ctx, b.ID, true); err != nil {
			t.Errorf("remove %s: %v", b.ID, err)
		}
	}
	m.Close()
	closed = true
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Prune(ctx, nil)
	d.Close()
	assertNothingLeft(t, filepath.Join(dir, "gvisor"))
}

// waitNoProcesses waits (generously) until no process mentions s and
// returns what is left.
func waitNoProcesses(t *testing.T, s string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps := processesMentioning(t, s)
		if len(ps) == 0 || time.Now().After(deadline) {
			return ps
		}
		time.Sleep(100 * time.Millisecond)
	}
}
