package gvisor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// openSnapManager opens a Manager on dir with the gVisor driver under
// dir/gvisor (so a later Open of dir finds the same sandboxes).
func openSnapManager(t *testing.T, dir string, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if errors.Is(err, gvisor.ErrUnsupported) {
		testenv.Skip(t, "gvisor driver unsupported here: "+err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := openManager(dir, d, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// snapEnv is a Manager on a fresh directory; its cleanup removes every box
// and checks that nothing of them is left on the host.
func snapEnv(t *testing.T, opts ...boxrun.Option) (*boxrun.Manager, string) {
	t.Helper()
	dir := t.TempDir()
	m := openSnapManager(t, dir, opts...)
	t.Cleanup(func() {
		ctx := context.Background()
		if boxes, err := m.List(ctx, boxapi.BoxFilter{}); err == nil {
			for _, b := range boxes {
				_ = m.Remove(ctx, b.ID, true)
			}
		}
		m.Close()
		d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
		if err != nil {
			t.Fatal(err)
		}
		_ = d.Prune(ctx, nil)
		d.Close()
		assertNothingLeft(t, filepath.Join(dir, "gvisor"))
	})
	return m, dir
}

// mexec runs cmd in box through m and returns stdout and the exit code.
func mexec(t *testing.T, m boxapi.Service, box string, cmd ...string) (string, int) {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := m.Exec(ctx, box, boxapi.ExecRequest{Cmd: cmd}, &out, nil)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, box, err)
	}
	return out.String(), *e.ExitCode
}

// mcount waits until /count in box is at least min and returns it.
func mcount(t *testing.T, m boxapi.Service, box string, min int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := mexec(t, m, box, "cat", "/count")
		if n, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && n >= min {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter in %s did not reach %d (last %q)", box, min, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counterBox creates a box running counterLoop with /data.txt written.
func counterBox(t *testing.T, m boxapi.Service, name string) (*boxapi.Box, int) {
	t.Helper()
	b, err := m.Create(context.Background(), boxapi.BoxSpec{Name: name, Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := mexec(t, m, b.ID, "sh", "-c", "echo kept > /data.txt && "+counterLoop); code != 0 {
		t.Fatalf("start loop: exit %d", code)
	}
	return b, mcount(t, m, b.ID, 20)
}

// rootlessRefusesSnapshots: rootless (TestRootless), Checkpoint fails
// cleanly: an error, no snapshot, the box still running.
func rootlessRefusesSnapshots(t *testing.T, m *boxrun.Manager) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		return false
	}
	ctx := context.Background()
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{}); err == nil {
		t.Fatal("rootless checkpoint succeeded")
	}
	if got, _ := m.Get(ctx, b.ID); got.Status != boxapi.StatusRunning {
		t.Errorf("box after a refused rootless checkpoint: %s", got.Status)
	}
	if ss, _ := m.Snapshots(ctx); len(ss) != 0 {
		t.Errorf("refused checkpoint left snapshots: %v", ss)
	}
	if _, err := m.Fork(ctx, b.ID, 2); err == nil {
		t.Fatal("rootless fork succeeded")
	}
	return true
}

// TestManager_CheckpointRestore: a box with a counter loop is checkpointed
// (and so stopped); the snapshot is recorded, survives the removal of its
// box and a restart; restores continue the counter with the files.
func TestManager_CheckpointRestore(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	src, before := counterBox(t, m, "snap-src")
	snap, err := m.Checkpoint(ctx, "snap-src", boxapi.CheckpointOptions{})
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if got, _ := m.Get(ctx, src.ID); got.Status != boxapi.StatusStopped {
		t.Errorf("source after checkpoint: %s, want stopped", got.Status)
	}
	if snap.SourceBoxID != src.ID || snap.Driver != "gvisor" || snap.SizeBytes <= 0 || snap.CPU != src.CPU ||
		snap.MemoryMB != 256 || snap.Image != src.Image || snap.CPUFeatures == "" || !strings.HasPrefix(snap.ID, "snap_") {
		t.Errorf("snapshot record: %+v", snap)
	}
	t.Logf("snapshot of a busybox box: %d bytes", snap.SizeBytes)
	r1, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{Name: "snap-r1"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if r1.ID == src.ID || r1.Name != "snap-r1" || r1.Status != boxapi.StatusRunning || r1.Handle == src.Handle {
		t.Errorf("restored box: %+v", r1)
	}
	if out, _ := mexec(t, m, r1.ID, "cat", "/data.txt"); out != "kept\n" {
		t.Errorf("file after restore: %q", out)
	}
	after := mcount(t, m, r1.ID, before+5)
	t.Logf("counter %d at checkpoint, %d after restore", before, after)

	// The same name again: NAME_ALREADY_EXISTS, nothing made.
	n0, _ := m.List(ctx, boxapi.BoxFilter{})
	if _, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{Name: "snap-r1"}); boxapi.ErrorCode(err) != boxapi.CodeNameAlreadyExists {
		t.Errorf("restore to an existing name: %v", err)
	}
	if n1, _ := m.List(ctx, boxapi.BoxFilter{}); len(n1) != len(n0) {
		t.Errorf("refused restore left a box: %d boxes, had %d", len(n1), len(n0))
	}
	// The source box goes; its snapshot stays, also across a restart.
	if err := m.Remove(ctx, src.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openSnapManager(t, dir)
	t.Cleanup(func() { // before snapEnv's check (cleanups run last first)
		boxes, _ := m2.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			_ = m2.Remove(context.Background(), b.ID, true)
		}
		m2.Close()
	})
	got, err := m2.GetSnapshot(ctx, snap.ID)
	if err != nil || got.SizeBytes != snap.SizeBytes || !got.CreatedAt.Equal(snap.CreatedAt) {
		t.Fatalf("snapshot after restart: %+v %v", got, err)
	}
	if list, _ := m2.Snapshots(ctx); len(list) != 1 || list[0].ID != snap.ID {
		t.Errorf("snapshots after restart: %+v", list)
	}
	r2, err := m2.Restore(ctx, snap.ID, boxapi.RestoreSpec{})
	if err != nil {
		t.Fatalf("restore after restart: %v", err)
	}
	mcount(t, m2, r2.ID, before+5)
	if out, _ := mexec(t, m2, r2.ID, "cat", "/data.txt"); out != "kept\n" {
		t.Errorf("file after restore: %q", out)
	}
	// Removed: gone from the list and the disk; restored boxes live on.
	if err := m2.RemoveSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", snap.ID)); !os.IsNotExist(err) {
		t.Errorf("snapshot files after removal: %v", err)
	}
	if _, err := m2.GetSnapshot(ctx, snap.ID); boxapi.ErrorCode(err) != boxapi.CodeSnapshotNotFound || !errors.Is(err, boxapi.ErrNotFound) {
		t.Errorf("removed snapshot: %v", err)
	}
	if err := m2.RemoveSnapshot(ctx, snap.ID); boxapi.ErrorCode(err) != boxapi.CodeSnapshotNotFound {
		t.Errorf("second removal: %v", err)
	}
	mcount(t, m2, r2.ID, before+10)
}

// TestManager_Fork: fork(3) of a running box gives three running boxes
// with its memory state; a file written in one is absent from the others
// and from the source, which keeps running; no scratch snapshot is left.
func TestManager_Fork(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	src, before := counterBox(t, m, "fork-src")
	forks, err := m.Fork(ctx, src.ID, 3)
	if err != nil {
		t.Fatalf("fork: %v", err)
	}
	if len(forks) != 3 {
		t.Fatalf("fork(3) made %d boxes", len(forks))
	}
	if got, _ := m.Get(ctx, src.ID); got.Status != boxapi.StatusRunning {
		t.Errorf("source after fork: %s", got.Status)
	}
	seen := map[string]bool{src.ID: true}
	for _, f := range forks {
		if seen[f.ID] || f.Status != boxapi.StatusRunning {
			t.Errorf("fork %+v", f)
		}
		seen[f.ID] = true
		mcount(t, m, f.ID, before+5)
		if out, _ := mexec(t, m, f.ID, "cat", "/data.txt"); out != "kept\n" {
			t.Errorf("file in fork: %q", out)
		}
	}
	host0, _ := mexec(t, m, forks[0].ID, "hostname")
	host1, _ := mexec(t, m, forks[1].ID, "hostname")
	rnd0, _ := mexec(t, m, forks[0].ID, "sh", "-c", "head -c 16 /dev/urandom | od -An -tx1")
	rnd1, _ := mexec(t, m, forks[1].ID, "sh", "-c", "head -c 16 /dev/urandom | od -An -tx1")
	hostSrc, _ := mexec(t, m, src.ID, "hostname")
	if host0 == host1 || host0 == hostSrc || host1 == hostSrc {
		t.Errorf("forks share a host name: %q %q (source %q)", host0, host1, hostSrc)
	}
	if rnd0 == rnd1 {
		t.Errorf("two forks read the same random bytes: %q", rnd0)
	}
	if _, code := mexec(t, m, forks[0].ID, "sh", "-c", "echo only-0 > /fork.txt"); code != 0 {
		t.Fatal("write in fork 0")
	}
	for _, b := range []string{forks[1].ID, forks[2].ID, src.ID} {
		if _, code := mexec(t, m, b, "test", "-e", "/fork.txt"); code == 0 {
			t.Errorf("a file written in fork 0 is visible in %s", b)
		}
	}
	mcount(t, m, src.ID, before+5)
	if ss, _ := m.Snapshots(ctx); len(ss) != 0 {
		t.Errorf("fork left snapshots: %+v", ss)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(ents) != 0 {
		t.Errorf("fork left snapshot files: %d", len(ents))
	}
}

// TestManager_SnapshotBadInput: every refusal has the spec's code and a
// clear message, and leaves no box, snapshot or file behind.
func TestManager_SnapshotBadInput(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	b, err := m.Create(ctx, boxapi.BoxSpec{Name: "bad-src", Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		err  error
		code boxapi.Code
	}{
		{"checkpoint of an unknown box", second(m.Checkpoint(ctx, "nope", boxapi.CheckpointOptions{})), boxapi.CodeBoxNotFound},
		{"restore of an unknown snapshot", second(m.Restore(ctx, "snap_nope", boxapi.RestoreSpec{})), boxapi.CodeSnapshotNotFound},
		{"get of an unknown snapshot", second(m.GetSnapshot(ctx, "snap_nope")), boxapi.CodeSnapshotNotFound},
		{"remove of an unknown snapshot", m.RemoveSnapshot(ctx, "../../etc"), boxapi.CodeSnapshotNotFound},
		{"fork 0", second(m.Fork(ctx, b.ID, 0)), boxapi.CodeValidationError},
		{"fork -1", second(m.Fork(ctx, b.ID, -1)), boxapi.CodeValidationError},
		{"fork above the limit", second(m.Fork(ctx, b.ID, boxapi.MaxFork+1)), boxapi.CodeValidationError},
		{"fork of an unknown box", second(m.Fork(ctx, "nope", 1)), boxapi.CodeBoxNotFound},
	} {
		if boxapi.ErrorCode(tc.err) != tc.code {
			t.Errorf("%s: %v (code %s), want %s", tc.what, tc.err, boxapi.ErrorCode(tc.err), tc.code)
		} else {
			t.Logf("%s: %s %q", tc.what, tc.code, boxapi.ErrorMessage(tc.err))
		}
	}
	// A running exec: BOX_BUSY; the box keeps running, the exec too.
	sleeper, err := m.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{})
	if boxapi.ErrorCode(err) != boxapi.CodeBoxBusy || !errors.Is(err, boxapi.ErrConflict) {
		t.Errorf("checkpoint with a running exec: %v", err)
	}
	t.Logf("busy: %q", boxapi.ErrorMessage(err))
	if e, _ := m.GetExec(ctx, sleeper.ID); e.Status != boxapi.ExecRunning {
		t.Errorf("exec after a refused checkpoint: %s", e.Status)
	}
	if _, err := m.Fork(ctx, b.ID, 2); boxapi.ErrorCode(err) != boxapi.CodeBoxBusy {
		t.Errorf("fork with a running exec: %v", err)
	}
	if _, err := m.CancelExec(ctx, sleeper.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitExec(ctx, sleeper.ID); err != nil {
		t.Fatal(err)
	}
	// A stopped box: BOX_NOT_RUNNING.
	if _, err := m.Stop(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{}); boxapi.ErrorCode(err) != boxapi.CodeBoxNotRunning {
		t.Errorf("checkpoint of a stopped box: %v", err)
	}
	if _, err := m.Fork(ctx, b.ID, 1); boxapi.ErrorCode(err) != boxapi.CodeBoxNotRunning {
		t.Errorf("fork of a stopped box: %v", err)
	}
	boxes, _ := m.List(ctx, boxapi.BoxFilter{})
	if len(boxes) != 1 {
		t.Errorf("refusals left boxes: %d", len(boxes))
	}
	if ss, _ := m.Snapshots(ctx); len(ss) != 0 {
		t.Errorf("refusals left snapshots: %+v", ss)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(ents) != 0 {
		t.Errorf("refusals left snapshot files: %d", len(ents))
	}
}

func second[T any](_ T, err error) error { return err }

// TestManager_SnapshotHostileFiles: a box plants symlinks to host paths,
// a symlinked directory, a fifo, a device attempt and a huge sparse file
// before a checkpoint. Checkpoint, restore and snapshot removal touch no
// host file outside the snapshot directory, the size counts only real
// blocks, and the restored box sees its own files, not the host's.
func TestManager_SnapshotHostileFiles(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	canaryDir := t.TempDir()
	canary := filepath.Join(canaryDir, "canary")
	if err := os.WriteFile(canary, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	plant := strings.Join([]string{
		"ln -s " + canary + " /evil-file",
		"ln -s " + canaryDir + " /evil-dir",
		"ln -s / /evil-root",
		"mkfifo /evil-fifo",
		"mknod /evil-dev b 8 0 2>/dev/null; true",
		"truncate -s 64G /huge",
		"mkdir -p /deep/a && chmod 000 /deep/a",
		"echo planted > /plain",
	}, " && ")
	if _, code := mexec(t, m, b.ID, "sh", "-c", plant); code != 0 {
		t.Fatalf("plant: exit %d", code)
	}
	snap, err := m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if snap.SizeBytes > 1<<30 {
		t.Errorf("snapshot size %d counts the sparse file", snap.SizeBytes)
	}
	r, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if out, _ := mexec(t, m, r.ID, "cat", "/plain"); out != "planted\n" {
		t.Errorf("restored file: %q", out)
	}
	// The box's symlinks resolve inside the box, never on the host.
	if out, _ := mexec(t, m, r.ID, "sh", "-c", "cat /evil-file 2>&1; ls /evil-dir 2>&1"); strings.Contains(out, "host secret") || strings.Contains(out, "canary") {
		t.Errorf("a restored box reads host files through its symlinks: %q", out)
	}
	if _, code := mexec(t, m, r.ID, "sh", "-c", "echo pwned > /evil-file; echo pwned > /evil-dir/x; rm -rf /evil-root/deep"); code < 0 {
		t.Fatal("write through symlinks")
	}
	if err := m.RemoveSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{b.ID, r.ID} {
		if err := m.Remove(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(canary); err != nil || string(got) != "host secret\n" {
		t.Errorf("host canary after checkpoint, restore, removals: %q %v", got, err)
	}
	if ents, _ := os.ReadDir(canaryDir); len(ents) != 1 {
		t.Errorf("host canary dir changed: %d entries", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(ents) != 0 {
		t.Errorf("snapshot files left: %d", len(ents))
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("host root damaged: %v", err)
	}
}

// TestManager_SnapshotRecovery: what a crash leaves of a checkpoint (an
// intent row, files without a row) is removed by the next Open, ready
// snapshots stay; a snapshot whose CPU features this host lacks is refused
// with a clear error and nothing made.
func TestManager_SnapshotRecovery(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	b, _ := counterBox(t, m, "rec-src")
	snap, err := m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash mid-checkpoint: an intent row with half its files; a crash
	// between a removal's commit and its files: files without a row.
	for _, d := range []string{"snap_intent0000", "snap_orphan0000"} {
		if err := os.MkdirAll(filepath.Join(dir, "snapshots", d, "upper"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dbExec(t, dir, `INSERT INTO snapshots(id, state, source_box_id, image, cpu, memory_mb, disk_size_gb, workdir, driver, cpu_features, created_at)
		VALUES ('snap_intent0000', 'creating', 'box_x', 'img', 1, 256, 8, '/', 'gvisor', '', '2026-01-01T00:00:00.000000Z');`)
	// And a snapshot from a host with a CPU feature this one lacks, taken
	// by a version without seals.
	dbExec(t, dir, `UPDATE snapshots SET cpu_features = cpu_features || ' boxrun_test_feature', manifest = NULL WHERE id = '`+snap.ID+`';`)

	m2 := openSnapManager(t, dir)
	t.Cleanup(func() {
		boxes, _ := m2.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			_ = m2.Remove(context.Background(), b.ID, true)
		}
		m2.Close()
	})
	ents, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	if len(ents) != 1 || ents[0].Name() != snap.ID {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("snapshot dirs after recovery: %v, want only %s", names, snap.ID)
	}
	if list, _ := m2.Snapshots(ctx); len(list) != 1 || list[0].ID != snap.ID {
		t.Errorf("snapshots after recovery: %+v", list)
	}
	if n := dbCount(t, dir, `SELECT count(*) FROM snapshots WHERE id = '`+snap.ID+`' AND manifest LIKE '%"box.json"%';`); n != 1 {
		t.Errorf("the unsealed snapshot was not sealed at Open")
	}
	n0, _ := m2.List(ctx, boxapi.BoxFilter{})
	_, err = m2.Restore(ctx, snap.ID, boxapi.RestoreSpec{Name: "cpu-mismatch"})
	if boxapi.ErrorCode(err) != boxapi.CodeRuntimeError || !strings.Contains(boxapi.ErrorMessage(err), "boxrun_test_feature") {
		t.Errorf("restore on a CPU without a feature: %v", err)
	}
	t.Logf("cpu mismatch: %q", boxapi.ErrorMessage(err))
	if n1, _ := m2.List(ctx, boxapi.BoxFilter{}); len(n1) != len(n0) {
		t.Errorf("refused restore left a box")
	}
}

// dbExec runs one statement on the Manager database in dir (closed).
func dbExec(t *testing.T, dir, q string) {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// dbCount runs a count query on the Manager database in dir.
func dbCount(t *testing.T, dir, q string) int {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := -1
	err = sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
