package boxrun

import (
	"context"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// Hibernation (issue 14). A hibernated box is a stopped box with a snapshot
// row in state hibernated (source_box_id = the box): its memory and files
// are saved under dir/snapshots/<id> and its sandbox processes are gone.
// The next exec, copy, attach or Start resumes it: the snapshot is restored
// under the same box ID (a new sandbox handle), the box row is switched to
// it, and then the old sandbox and the snapshot are removed. A crash at
// any step leaves either the hibernated box (the new sandbox is unknown to
// the database and pruned by Open) or the resumed one (Open drops the
// hibernation row of a box that runs, Prune the old sandbox).

// Hibernate saves a running box with its memory and frees it (its sandbox
// processes end): it becomes stopped, Lifetime reports it hibernated, and
// the next exec, file transfer, attach or Start resumes it where it was.
// Errors: as Checkpoint.
func (m *Manager) Hibernate(ctx context.Context, box string) (*Box, error) {
	b, _, err := m.checkpointBox(ctx, box, false, snapHibernated)
	if err != nil {
		return nil, err
	}
	return &b.Box, nil
}

// resumeLocked resumes b (locked by the caller) if it is hibernated; it
// reports whether it was. On failure the box stays hibernated.
func (m *Manager) resumeLocked(ctx context.Context, b *boxRow) (bool, error) {
	if b.Status != StatusStopped {
		return false, nil
	}
	h, err := m.store.hibernationOf(ctx, b.ID)
	if err != nil || h == nil {
		return false, err
	}
	cp, err := m.checkpointer()
	if err != nil {
		return true, err
	}
	if err := m.verifySnapshot(ctx, h); err != nil {
		return true, err
	}
	if err := m.reserve(b.CPU, b.MemoryMB, false); err != nil {
		return true, err
	}
	handle, err := cp.Restore(m.ctx, m.snapPath(h.ID), sandbox.Spec{BoxID: b.ID})
	if err != nil {
		m.release(b.CPU, b.MemoryMB)
		return true, Errorf(CodeRuntimeError, "Failed to resume the hibernated box: %w", err)
	}
	old := b.Handle
	b.Handle = handle
	b.Status = StatusRunning
	b.StartedAt = m.now()
	b.StoppedAt = time.Time{}
	b.ErrorCode, b.ErrorMessage = "", ""
	ev, err := m.store.updateBox(context.WithoutCancel(ctx), b, EventBoxStarted, FormatTime(b.StartedAt))
	if err != nil {
		if rerr := m.driver.Remove(context.WithoutCancel(m.ctx), handle); rerr != nil {
			m.log.Warn("resume: remove sandbox", "box", b.ID, "err", rerr)
		}
		m.release(b.CPU, b.MemoryMB)
		b.Handle, b.Status = old, StatusStopped
		return true, err
	}
	m.bus.publish(ev)
	if old != "" && old != handle {
		if err := m.driver.Remove(context.WithoutCancel(m.ctx), old); err != nil {
			m.log.Warn("resume: remove the hibernated sandbox", "box", b.ID, "err", err) // Open prunes it
		}
	}
	m.dropSnapshot(h.ID)
	if lt, err := m.store.getLifetime(ctx, b.ID); err == nil && lt != nil {
		m.armLifetime(b.ID, lt.TTL, lt.IdleTimeout, lt.OnExpire, b.StartedAt, b.StartedAt)
	}
	m.log.Info("resumed a hibernated box", "box", b.ID)
	return true, nil
}

// resumeIfHibernated resumes box id when it is hibernated (for file
// transfers and attach, which do not hold the box lock) and returns its
// row afterwards, or nil when it was not hibernated.
func (m *Manager) resumeIfHibernated(ctx context.Context, id string) (*boxRow, error) {
	b, unlock, err := m.getLocked(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ok, err := m.resumeLocked(ctx, b)
	if err != nil || !ok {
		return nil, err
	}
	return b, nil
}

// dropHibernation removes the saved state of a hibernated box (removal).
func (m *Manager) dropHibernation(boxID string) {
	h, err := m.store.hibernationOf(context.WithoutCancel(m.ctx), boxID)
	if err != nil {
		m.log.Warn("remove: hibernated state", "box", boxID, "err", err)
		return
	}
	if h != nil {
		m.dropSnapshot(h.ID)
	}
}

// hibernateExpired hibernates a box whose idle timeout or ttl fired with
// on_expire hibernate (b is locked by the caller); a box that cannot be
// hibernated (a driver without checkpoints, a rootless driver) is stopped.
func (m *Manager) hibernateExpired(ctx context.Context, b *boxRow) {
	_, err := m.checkpointLocked(ctx, b, b.ID, false, snapHibernated)
	if err == nil {
		m.log.Info("lifetime: box hibernated", "box", b.ID)
		return
	}
	m.log.Warn("lifetime: hibernate failed; stopping the box", "box", b.ID, "err", err)
	if b.Status == StatusRunning {
		if _, err := m.stopLocked(ctx, b); err != nil {
			m.log.Warn("lifetime: stop", "box", b.ID, "err", err)
		}
	}
}
