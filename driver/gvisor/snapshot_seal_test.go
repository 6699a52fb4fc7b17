package gvisor_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
)

// largestFile returns the largest regular file under dir.
func largestFile(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				best, size = p, fi.Size()
			}
		}
		return nil
	})
	if best == "" {
		t.Fatalf("no file under %s", dir)
	}
	return best
}

// saveFile saves the file p and returns a function that puts it back
// (contents, mode, owner).
func saveFile(t *testing.T, p string) (restore func()) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		_ = os.RemoveAll(p)
		if err := os.WriteFile(p, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestManager_SnapshotTampered: a snapshot directory changed on the host
// after the checkpoint (a truncated or modified memory image, a box file
// modified, swapped for a symlink to a host file, a file added, the box
// metadata swapped) is refused by Restore and by the resume of a
// hibernated box with RUNTIME_ERROR wrapping ErrSnapshotCorrupt that
// names the file, before anything is made: no box row, no sandbox, the
// host file behind the planted symlink untouched. Put back, the same
// snapshot restores.
func TestManager_SnapshotTampered(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	src, before := counterBox(t, m, "seal-src")
	snap, err := m.Checkpoint(ctx, src.ID, boxapi.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, "snapshots", snap.ID)
	canary := filepath.Join(t.TempDir(), "canary")
	if err := os.WriteFile(canary, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	image := largestFile(t, filepath.Join(sdir, "image"))
	data := filepath.Join(sdir, "upper", "data.txt")
	if _, err := os.Lstat(data); err != nil {
		t.Fatalf("the snapshot has no upper/data.txt: %v", err)
	}
	boxes0, _ := m.List(ctx, boxapi.BoxFilter{})
	sandboxes0 := sandboxDirs(t, dir)
	refused := func(what string, wantPath string) {
		t.Helper()
		_, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{Name: "seal-restored"})
		if !errors.Is(err, boxrun.ErrSnapshotCorrupt) || boxapi.ErrorCode(err) != boxapi.CodeRuntimeError ||
			!strings.Contains(boxapi.ErrorMessage(err), wantPath) {
			t.Errorf("%s: restore: %v, want RUNTIME_ERROR ErrSnapshotCorrupt naming %s", what, err, wantPath)
		}
		t.Logf("%s: %s", what, boxapi.ErrorMessage(err))
		if boxes, _ := m.List(ctx, boxapi.BoxFilter{}); len(boxes) != len(boxes0) {
			t.Errorf("%s: a refused restore left a box: %d boxes, had %d", what, len(boxes), len(boxes0))
		}
		if got := sandboxDirs(t, dir); len(got) != len(sandboxes0) {
			t.Errorf("%s: a refused restore left a sandbox: %v, had %v", what, got, sandboxes0)
		}
	}
	rel := func(p string) string { r, _ := filepath.Rel(sdir, p); return r }

	// The memory image truncated, then one byte of it changed.
	put := saveFile(t, image)
	fi, _ := os.Stat(image)
	if err := os.Truncate(image, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	refused("truncated image", rel(image))
	put()
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, fi.Size()/3); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, fi.Size()/3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	refused("modified image", rel(image))
	put()

	// A box file modified, then swapped for a symlink to a host file (a
	// host attacker, or a malicious box's planted link).
	putData := saveFile(t, data)
	if err := os.WriteFile(data, []byte("evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused("modified box file", "upper/data.txt")
	if err := os.Remove(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(canary, data); err != nil {
		t.Fatal(err)
	}
	refused("box file swapped for a symlink", "upper/data.txt")
	putData()

	// A file added (a setuid binary planted in the box's files), and the
	// driver metadata swapped for another box's.
	planted := filepath.Join(sdir, "upper", "planted")
	if err := os.WriteFile(planted, []byte("#!/bin/sh\n"), 0o4755); err != nil {
		t.Fatal(err)
	}
	refused("file added", "upper/planted")
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(sdir, "box.json")
	putMeta := saveFile(t, meta)
	mb, _ := os.ReadFile(meta)
	if err := os.WriteFile(meta, []byte(strings.Replace(string(mb), `"memory_mb"`, `"memory_mb_x"`, 1)+" "), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("metadata swapped", "box.json")
	putMeta()

	// Put back, the snapshot restores with the counter continuing.
	if got, err := os.ReadFile(canary); err != nil || string(got) != "host secret\n" {
		t.Errorf("host canary: %q %v", got, err)
	}
	r, err := m.Restore(ctx, snap.ID, boxapi.RestoreSpec{})
	if err != nil {
		t.Fatalf("restore of the snapshot put back: %v", err)
	}
	mcount(t, m, r.ID, before+3)
	if out, _ := mexec(t, m, r.ID, "cat", "/data.txt"); out != "kept\n" {
		t.Errorf("restored file: %q", out)
	}

	// A hibernated box whose saved state was tampered with stays
	// hibernated: the exec that would resume it fails with the reason.
	if _, err := m.Hibernate(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	hib := hibernationDir(t, dir, snap.ID)
	himage := largestFile(t, filepath.Join(hib, "image"))
	putH := saveFile(t, himage)
	if err := os.Truncate(himage, 10); err != nil {
		t.Fatal(err)
	}
	_, err = m.Exec(ctx, r.ID, boxapi.ExecRequest{Cmd: []string{"true"}}, nil, nil)
	if !errors.Is(err, boxrun.ErrSnapshotCorrupt) {
		t.Errorf("exec in a hibernated box with a tampered state: %v", err)
	}
	if got, _ := m.Get(ctx, r.ID); got.Status != boxapi.StatusStopped {
		t.Errorf("box after a refused resume: %s", got.Status)
	}
	putH()
	if out, code := mexec(t, m, r.ID, "cat", "/data.txt"); code != 0 || out != "kept\n" {
		t.Errorf("resume after the state was put back: %q %d", out, code)
	}
}

// sandboxDirs lists the gVisor box directories under a Manager dir.
func sandboxDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "gvisor", "boxes"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// hibernationDir returns the one snapshot dir under dir other than skip.
func hibernationDir(t *testing.T, dir, skip string) string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	for _, e := range ents {
		if e.Name() != skip {
			return filepath.Join(dir, "snapshots", e.Name())
		}
	}
	t.Fatal("no hibernation snapshot dir")
	return ""
}
