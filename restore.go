package boxrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/boxrun/boxrun/sandbox"
)

// Restore makes a new running box from a snapshot: its processes continue
// from the saved memory and its files are a private copy of the snapshot's
// files. The box gets a new ID (and spec.Name); its shape, image, env and
// workdir are the snapshot's, and the server's default lifetime applies.
// What gVisor keeps from the saved kernel is documented in
// docs/api-extensions.md (the host name, the state of user-space random
// generators). A snapshot taken on a host whose CPU had features this host
// lacks is refused before anything is made. Errors: SNAPSHOT_NOT_FOUND,
// NAME_ALREADY_EXISTS, RESOURCE_EXCEEDED, VALIDATION_ERROR (a driver
// without checkpoints), RUNTIME_ERROR (another driver's snapshot, a CPU
// mismatch, a driver failure: nothing is left behind).
func (m *Manager) Restore(ctx context.Context, snapshot string, spec RestoreSpec) (*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	if _, err := m.checkpointer(); err != nil {
		return nil, err
	}
	s, err := m.store.getSnapshot(ctx, snapshot)
	if err != nil {
		return nil, err
	}
	unlock := m.lockBox(s.ID) // RemoveSnapshot waits for the restore
	defer unlock()
	if s, err = m.store.getSnapshot(ctx, s.ID); err != nil {
		return nil, err
	}
	return m.restore(ctx, s, spec.Name)
}

// restore makes a box from s, whose files the caller keeps in place.
func (m *Manager) restore(ctx context.Context, s *snapRow, name string) (*Box, error) {
	cp, err := m.checkpointer()
	if err != nil {
		return nil, err
	}
	if s.Driver != m.driver.Name() {
		return nil, Errorf(CodeRuntimeError, "Snapshot '%s' was taken by the %s driver; this server runs %s", s.ID, s.Driver, m.driver.Name())
	}
	if missing := missingCPUFeatures(s.CPUFeatures, hostCPUFeatures()); len(missing) > 0 {
		return nil, Errorf(CodeRuntimeError, "Snapshot '%s' was taken on a CPU with features this host lacks (%s): it cannot be restored here",
			s.ID, strings.Join(missing, " "))
	}
	if name != "" {
		if _, err := m.store.getBox(ctx, name); err == nil {
			return nil, nameExists(name)
		}
	}
	if err := m.verifySnapshot(ctx, s); err != nil {
		return nil, err
	}
	if err := m.reserve(s.CPU, s.MemoryMB, true); err != nil {
		return nil, err
	}
	reserved := true
	defer func() {
		if reserved {
			m.release(s.CPU, s.MemoryMB)
		}
	}()
	now := m.now()
	b := &boxRow{Box: Box{
		ID: newID("box_"), Name: name, Status: StatusCreating, Image: s.Image,
		CPU: s.CPU, MemoryMB: s.MemoryMB, DiskSizeGB: s.DiskSizeGB, Workdir: s.Workdir, Env: s.Env, CreatedAt: now,
		Network: s.Network,
	}, ImageDigest: s.ImageDigest}
	unlockBox := m.lockBox(b.ID)
	defer unlockBox()
	// The sandbox first, the row after it: a crash in between leaves a
	// sandbox no row knows, which the next Open prunes.
	handle, err := cp.Restore(m.ctx, m.snapPath(s.ID), sandbox.Spec{BoxID: b.ID})
	if errors.Is(err, ErrNotFound) {
		return nil, Errorf(CodeRuntimeError, "Snapshot '%s' has lost its files: %w", s.ID, err)
	}
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "Failed to restore snapshot: %w", err)
	}
	b.Handle = handle
	b.StartedAt = m.now()
	evs, err := m.store.insertRestoredBox(context.WithoutCancel(ctx), b)
	if err != nil {
		if rerr := m.driver.Remove(context.WithoutCancel(m.ctx), handle); rerr != nil {
			m.log.Warn("restore: remove sandbox", "box", b.ID, "err", rerr) // Open prunes it
		}
		return nil, err
	}
	for _, ev := range evs {
		m.bus.publish(ev)
	}
	reserved = false
	if ttl, idle := m.cfg.defaultTTL, m.cfg.defaultIdle; ttl > 0 || idle > 0 {
		if err := m.store.insertLifetime(context.WithoutCancel(ctx), b.ID, ttl, idle, ExpireStop); err != nil {
			m.log.Warn("restore: lifetime", "box", b.ID, "err", err)
		} else {
			m.armLifetime(b.ID, ttl, idle, ExpireStop, b.StartedAt, b.StartedAt)
		}
	}
	box := b.Box
	return &box, nil
}

// Fork makes n new running boxes with the current memory and files of a
// running box, which keeps running: one checkpoint (a scratch snapshot,
// never listed and removed afterwards) restored n times. Every fork has its
// own copy of the files, so changes never leak between forks or back to
// the source. It is all or nothing: when a fork fails, the ones made
// before it are removed. Errors: VALIDATION_ERROR (n < 1 or n > MaxFork),
// and those of Checkpoint and Restore.
func (m *Manager) Fork(ctx context.Context, box string, n int) ([]*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	if n < 1 || n > MaxFork {
		return nil, invalid(fmt.Sprintf("count must be between 1 and %d", MaxFork))
	}
	if _, err := m.checkpointer(); err != nil {
		return nil, err
	}
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, err
	}
	s, err := m.checkpointLocked(ctx, b, box, true, "")
	unlock()
	if err != nil {
		return nil, err
	}
	defer m.dropSnapshot(s.ID)
	out := make([]*Box, 0, n)
	for range n {
		fb, err := m.restore(ctx, s, "")
		if err != nil {
			for _, f := range out {
				if fr, unlock, gerr := m.getLocked(context.WithoutCancel(ctx), f.ID); gerr == nil {
					if rerr := m.removeLocked(context.WithoutCancel(ctx), fr, true); rerr != nil {
						m.log.Warn("fork: remove a fork after a failure", "box", f.ID, "err", rerr)
					}
					unlock()
				}
			}
			return nil, err
		}
		out = append(out, fb)
	}
	return out, nil
}

// hostCPUFeatures returns the CPU feature flags of this host, sorted and
// space separated ("" when /proc/cpuinfo says nothing).
func hostCPUFeatures() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if k = strings.TrimSpace(k); k == "flags" || k == "Features" {
			f := strings.Fields(v)
			sort.Strings(f)
			return strings.Join(f, " ")
		}
	}
	return ""
}

// missingCPUFeatures returns the features of want that have lacks.
func missingCPUFeatures(want, have string) []string {
	h := map[string]bool{}
	for _, f := range strings.Fields(have) {
		h[f] = true
	}
	var missing []string
	for _, f := range strings.Fields(want) {
		if !h[f] {
			missing = append(missing, f)
		}
	}
	return missing
}
