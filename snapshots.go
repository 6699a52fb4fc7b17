package boxrun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/boxrun/boxrun/sandbox"
)

// Snapshots (issue 14). A snapshot is a directory dir/snapshots/<id> that
// the driver (a sandbox.Checkpointer) owns, and a row in SQLite. The row is
// written first, in state creating (the intent), and becomes ready once the
// driver has saved the box; Open removes creating rows with their files,
// and files without a row. A restore makes the sandbox first and the box
// row after it, in one transaction: a crash in between leaves a sandbox no
// row knows, which Open's Prune removes. No half-made snapshot or box is
// ever visible.

// checkpointer returns the driver's Checkpointer, or a VALIDATION_ERROR.
func (m *Manager) checkpointer() (sandbox.Checkpointer, error) {
	cp, ok := m.driver.(sandbox.Checkpointer)
	if !ok {
		return nil, invalid(fmt.Sprintf("The %s driver cannot checkpoint boxes", m.driver.Name()))
	}
	return cp, nil
}

// snapPath is the directory of a snapshot's files. id always comes from a
// row (IDs are generated), never from a request.
func (m *Manager) snapPath(id string) string { return filepath.Join(m.dir, "snapshots", id) }

// Checkpoint saves a running box, the memory of its processes and its
// files, as a new snapshot under the Manager's directory (the driver
// compresses the memory image). By default the box is stopped afterwards
// (as by Stop: its files are kept); opts.LeaveRunning keeps it running.
// A checkpoint is refused while execs or attach sessions run in the box
// (the driver must close its connection to the box's agent for the save);
// file transfers that start during a checkpoint are refused with BOX_BUSY.
// A box with a network is saved without it; each box restored from the
// snapshot gets a network of its own with the source's egress policy.
// Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING, BOX_BUSY, VALIDATION_ERROR (a
// driver without checkpoints), RUNTIME_ERROR.
func (m *Manager) Checkpoint(ctx context.Context, box string, opts CheckpointOptions) (*Snapshot, error) {
	_, s, err := m.checkpointBox(ctx, box, opts.LeaveRunning, snapReady)
	if err != nil {
		return nil, err
	}
	return &s.Snapshot, nil
}

// checkpointBox is Checkpoint and Hibernate: it saves the box named box
// under its lock and moves the snapshot to state final (see
// checkpointLocked). It returns the box's row as the checkpoint left it.
func (m *Manager) checkpointBox(ctx context.Context, box string, leaveRunning bool, final string) (*boxRow, *snapRow, error) {
	if err := m.enter(); err != nil {
		return nil, nil, err
	}
	defer m.leave()
	if _, err := m.checkpointer(); err != nil {
		return nil, nil, err
	}
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	s, err := m.checkpointLocked(ctx, b, box, leaveRunning, final)
	if err != nil {
		return nil, nil, err
	}
	return b, s, nil
}

// checkpointLocked saves the box b, whose lock the caller holds, and moves
// the snapshot row to state final (snapReady, snapHibernated); with final
// "" it stays an intent (a fork's scratch snapshot, removed by the caller
// or by the next Open).
func (m *Manager) checkpointLocked(ctx context.Context, b *boxRow, name string, leaveRunning bool, final string) (*snapRow, error) {
	cp, err := m.checkpointer()
	if err != nil {
		return nil, err
	}
	switch {
	case b.Status != StatusRunning:
		return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running", name)
	case b.Handle == "":
		return nil, Errorf(CodeRuntimeError, "Box has no BoxLite ID")
	}
	done, err := m.beginCheckpoint(b.ID, name)
	if err != nil {
		return nil, err
	}
	defer done()
	s := &snapRow{State: snapCreating, Snapshot: Snapshot{
		ID: newID("snap_"), SourceBoxID: b.ID, Image: b.Image, ImageDigest: b.ImageDigest,
		CPU: b.CPU, MemoryMB: b.MemoryMB, DiskSizeGB: b.DiskSizeGB, Workdir: b.Workdir, Env: b.Env,
		Driver: m.driver.Name(), CPUFeatures: hostCPUFeatures(), CreatedAt: m.now(),
	}, Network: b.Network}
	if err := os.MkdirAll(filepath.Dir(m.snapPath(s.ID)), 0o700); err != nil {
		return nil, Errorf(CodeRuntimeError, "Failed to checkpoint box: %w", err)
	}
	if err := m.store.insertSnapshot(ctx, s); err != nil {
		return nil, err
	}
	// The save outlives this request once begun: the Manager's context.
	err = cp.Checkpoint(m.ctx, b.Handle, m.snapPath(s.ID), sandbox.CheckpointOptions{LeaveRunning: leaveRunning})
	if err != nil {
		m.dropSnapshot(s.ID)
		if !m.sandboxRuns(b.Handle) {
			// The driver could not bring the box back: say so in its row.
			if _, serr := m.stopLocked(context.WithoutCancel(ctx), b); serr != nil {
				m.log.Warn("checkpoint: mark box stopped", "box", b.ID, "err", serr)
			}
		}
		switch {
		case errors.Is(err, ErrInvalid):
			return nil, &Error{Code: CodeValidationError, Message: fmt.Sprintf("Box '%s' cannot be checkpointed: %v", name, err), Err: err}
		case errors.Is(err, ErrConflict):
			return nil, &Error{Code: CodeBoxBusy, Message: fmt.Sprintf("Box '%s' cannot be checkpointed now: %v", name, err), Err: err}
		}
		return nil, Errorf(CodeRuntimeError, "Failed to checkpoint box: %w", err)
	}
	s.SizeBytes = diskUsage(m.snapPath(s.ID))
	// The seal (snapseal.go): what every restore checks the files against.
	manifest, err := snapshotManifest(context.WithoutCancel(ctx), m.snapPath(s.ID))
	if err == nil {
		err = m.store.sealSnapshot(context.WithoutCancel(ctx), s.ID, final, s.SizeBytes, manifest)
	}
	if err != nil {
		m.dropSnapshot(s.ID)
		return nil, Errorf(CodeRuntimeError, "Failed to seal the snapshot: %w", err)
	}
	m.log.Debug("snapshot sealed", "snapshot", s.ID, "seal", sealDigest(manifest))
	if final != "" {
		s.State = final
	}
	if !leaveRunning {
		if _, err := m.stopLocked(context.WithoutCancel(ctx), b); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// beginCheckpoint marks box id as being checkpointed until done is called,
// or fails with BOX_BUSY when execs or agent users (attach, file transfer)
// are in it. Execs cannot start meanwhile: they need the box lock, which
// the checkpoint holds.
func (m *Manager) beginCheckpoint(id, name string) (done func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	execs := 0
	for _, r := range m.runs {
		if r.exec.BoxID == id {
			execs++
		}
	}
	if execs > 0 || m.agentUse[id] > 0 {
		return nil, Errorf(CodeBoxBusy, "Box '%s' has %d running exec(s) and %d attach session(s) or file transfer(s): wait for them or cancel them before a checkpoint",
			name, execs, m.agentUse[id])
	}
	m.checkpointing[id] = true
	return func() {
		m.mu.Lock()
		delete(m.checkpointing, id)
		m.mu.Unlock()
	}, nil
}

// useAgent registers a short user of box id's agent (attach, file
// transfer) until done is called; it fails with BOX_BUSY during a
// checkpoint of the box.
func (m *Manager) useAgent(id string) (done func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checkpointing[id] {
		return nil, Errorf(CodeBoxBusy, "Box is being checkpointed")
	}
	m.agentUse[id]++
	return func() {
		m.mu.Lock()
		if m.agentUse[id]--; m.agentUse[id] <= 0 {
			delete(m.agentUse, id)
		}
		m.mu.Unlock()
	}, nil
}

// dropSnapshot deletes a snapshot's row and then its files (a crash in
// between leaves files without a row, which Open removes).
func (m *Manager) dropSnapshot(id string) {
	if _, err := m.store.deleteSnapshot(context.WithoutCancel(m.ctx), id); err != nil {
		m.log.Warn("snapshot: delete row", "snapshot", id, "err", err)
		return
	}
	if err := os.RemoveAll(m.snapPath(id)); err != nil {
		m.log.Warn("snapshot: remove files", "snapshot", id, "err", err)
	}
}

// Snapshots lists the snapshots, newest first.
func (m *Manager) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	rows, err := m.store.listSnapshots(ctx, snapReady)
	if err != nil {
		return nil, err
	}
	out := make([]*Snapshot, len(rows))
	for i, r := range rows {
		out[i] = &r.Snapshot
	}
	return out, nil
}

// GetSnapshot returns a snapshot by ID. Errors: SNAPSHOT_NOT_FOUND.
func (m *Manager) GetSnapshot(ctx context.Context, id string) (*Snapshot, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	s, err := m.store.getSnapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	return &s.Snapshot, nil
}

// RemoveSnapshot deletes a snapshot and its files; boxes restored from it
// are not affected (they have their own copies). Errors: SNAPSHOT_NOT_FOUND.
func (m *Manager) RemoveSnapshot(ctx context.Context, id string) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	unlock := m.lockBox(id) // restores of it hold this lock
	defer unlock()
	s, err := m.store.getSnapshot(ctx, id)
	if err != nil {
		return err
	}
	found, err := m.store.deleteSnapshot(ctx, s.ID)
	if err != nil {
		return err
	}
	if !found {
		return snapshotNotFound(id)
	}
	if err := os.RemoveAll(m.snapPath(s.ID)); err != nil {
		m.log.Warn("snapshot: remove files", "snapshot", s.ID, "err", err) // Open removes them later
	}
	return nil
}

// recoverSnapshots removes what a crash left of checkpoints in progress:
// intent rows with their files, and snapshot files no row knows.
func (m *Manager) recoverSnapshots(ctx context.Context) error {
	rows, err := m.store.listSnapshots(ctx, "")
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range rows {
		if r.State == snapReady {
			known[r.ID] = true
			m.sealLegacy(ctx, r.ID)
			continue
		}
		if r.State == snapHibernated {
			// The saved state of a hibernated box, unless a crash came
			// after its resume (running) or removal (gone).
			if b, err := m.store.getBox(ctx, r.SourceBoxID); err == nil && b.Status == StatusStopped {
				known[r.ID] = true
				m.sealLegacy(ctx, r.ID)
				continue
			}
		}
		m.log.Warn("recover: removing an unfinished snapshot", "snapshot", r.ID)
		if _, err := m.store.deleteSnapshot(ctx, r.ID); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(filepath.Join(m.dir, "snapshots"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		if !known[e.Name()] {
			if err := os.RemoveAll(filepath.Join(m.dir, "snapshots", e.Name())); err != nil {
				m.log.Warn("recover: remove orphan snapshot files", "name", e.Name(), "err", err)
			}
		}
	}
	return nil
}

// diskUsage sums the allocated blocks of the files under dir, without
// following symbolic links (a box's files are hostile: a symlink in them
// points anywhere, a sparse file claims any size).
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// sealLegacy seals a finished snapshot that has no seal (taken before
// seals existed) with its files as they are now: trust on first use, once.
func (m *Manager) sealLegacy(ctx context.Context, id string) {
	if _, ok, err := m.store.snapshotManifest(ctx, id); err != nil || ok {
		return
	}
	manifest, err := snapshotManifest(ctx, m.snapPath(id))
	if err != nil {
		m.log.Warn("recover: cannot seal a snapshot taken before seals; it will not restore", "snapshot", id, "err", err)
		return
	}
	if err := m.store.sealSnapshot(ctx, id, "", diskUsage(m.snapPath(id)), manifest); err != nil {
		m.log.Warn("recover: seal a snapshot", "snapshot", id, "err", err)
		return
	}
	m.log.Warn("recover: sealed a snapshot taken before seals with its files as they are now", "snapshot", id)
}
