package boxrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// validateSpec applies defaults to spec and checks it in the API's order:
// cpu, memory_mb, disk_size_gb, workdir.
func validateSpec(spec *BoxSpec) error {
	if spec.CPU == 0 {
		spec.CPU = DefaultCPU
	}
	if spec.MemoryMB == 0 {
		spec.MemoryMB = DefaultMemoryMB
	}
	if spec.DiskSizeGB == 0 {
		spec.DiskSizeGB = DefaultDiskSizeGB
	}
	switch {
	case spec.CPU < 0:
		return invalid("cpu must be greater than 0")
	case spec.CPU > 255:
		return invalid("cpu must be at most 255")
	case spec.MemoryMB < 0:
		return invalid("memory_mb must be greater than 0")
	case spec.DiskSizeGB < 0:
		return invalid("disk_size_gb must be greater than 0")
	case spec.Workdir != "" && !strings.HasPrefix(spec.Workdir, "/"):
		return invalid("workdir must be an absolute path (starting with /)")
	case spec.Pull != "" && spec.Pull != PullAlways && spec.Pull != PullMissing && spec.Pull != PullNever:
		return invalid("pull must be always, missing or never")
	}
	for _, v := range spec.Volumes {
		if v.HostPath == "" || v.GuestPath == "" {
			return invalid("volumes need host_path and guest_path")
		}
		if !strings.HasPrefix(v.GuestPath, "/") {
			return invalid("volume guest_path must be an absolute path (starting with /)")
		}
	}
	return nil
}

// Create creates a box and starts its sandbox; it returns once the box is
// running. Zero fields of spec take the defaults. Errors: VALIDATION_ERROR,
// NAME_ALREADY_EXISTS, RUNTIME_ERROR (missing volume path, driver failure),
// RESOURCE_EXCEEDED, IMAGE_PULL_FAILED. When the image pull or the sandbox
// fails after the box row exists, the box is kept with status error and
// ErrorCode/ErrorMessage set, and its reservation is released.
func (m *Manager) Create(ctx context.Context, spec BoxSpec) (*Box, error) {
	b, err := m.create(ctx, spec, false)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// create is Create; run marks the box as an ephemeral run's (run_boxes:
// the next Open deletes it if a crash interrupts the run). On an error,
// the returned box is the row that was kept with status error, if any, so
// that a run can remove it.
func (m *Manager) create(ctx context.Context, spec BoxSpec, run bool) (box *Box, err error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	if err := validateSpec(&spec); err != nil {
		return nil, err
	}
	if err := m.validateNetwork(&spec); err != nil {
		return nil, err
	}
	if err := m.validateLifetime(&spec); err != nil {
		return nil, err
	}
	if spec.Name != "" {
		if _, err := m.store.getBox(ctx, spec.Name); err == nil {
			return nil, nameExists(spec.Name)
		}
	}
	for _, v := range spec.Volumes {
		if _, err := os.Stat(v.HostPath); err != nil {
			return nil, Errorf(CodeRuntimeError, "Volume host path does not exist: %s", v.HostPath)
		}
	}
	if err := m.reserve(spec.CPU, spec.MemoryMB, true); err != nil {
		return nil, err
	}
	reserved := true
	defer func() {
		if reserved {
			m.release(spec.CPU, spec.MemoryMB)
		}
	}()

	now := m.now()
	b := &boxRow{Box: Box{
		ID: newID("box_"), Name: spec.Name, Status: StatusCreating, Image: spec.Image,
		CPU: spec.CPU, MemoryMB: spec.MemoryMB, DiskSizeGB: spec.DiskSizeGB, Network: spec.Network,
		Workdir: spec.Workdir, Env: spec.Env, Volumes: spec.Volumes, CreatedAt: now,
	}, run: run}
	if b.Workdir == "" {
		b.Workdir = DefaultWorkdir
	}
	unlock := m.lockBox(b.ID)
	defer unlock()
	ev, err := m.store.insertBox(ctx, b, EventBoxCreated)
	if err != nil {
		return nil, err
	}
	m.bus.publish(ev)
	rowKept := true
	defer func() {
		if err != nil && rowKept {
			kept := b.Box
			box = &kept
		}
	}()
	if spec.TTL > 0 || spec.IdleTimeout > 0 || spec.OnExpire != ExpireStop {
		if err := m.store.insertLifetime(ctx, b.ID, spec.TTL, spec.IdleTimeout, spec.OnExpire); err != nil {
			return nil, m.failCreate(b, err)
		}
	}

	// From here on the row exists: any failure marks it error. The image
	// lock is held shared until the row records the image's digest, so a
	// concurrent PruneImages either sees the box's digest or runs before
	// the pull.
	m.imageMu.RLock()
	defer m.imageMu.RUnlock()
	pull := spec.Pull
	if pull == "" {
		pull = PullMissing
	}
	img, err := m.pullImage(ctx, spec.Image, pull)
	if err != nil {
		return nil, m.failCreate(b, err)
	}
	sb := sandbox.Spec{
		BoxID: b.ID, Image: img, CPU: b.CPU, MemoryMB: b.MemoryMB, DiskSizeGB: b.DiskSizeGB,
		Network: b.Network, Volumes: b.Volumes, Ports: spec.Ports, Egress: spec.Egress,
	}
	if img != nil {
		b.ImageDigest = img.Digest
		if spec.Workdir == "" && img.Config.WorkingDir != "" && strings.HasPrefix(img.Config.WorkingDir, "/") {
			b.Workdir = img.Config.WorkingDir
		}
		sb.Env = append(sb.Env, img.Config.Env...)
		sb.User = img.Config.User
	}
	sb.Workdir = b.Workdir
	sb.Env = append(sb.Env, envList(b.Env)...)
	// A warm sandbox of the same image and shape, when the pool has one.
	var handle string
	if e := m.poolEntry(&spec); e != nil {
		handle = m.takePooled(e, img)
	}
	// The sandbox outlives this request: a canceled ctx must not leave it
	// half made, so the driver gets the Manager's context.
	if handle == "" {
		handle, err = m.driver.Create(m.ctx, sb)
	}
	if errors.Is(err, ErrPortInUse) {
		// Bad input found by the driver: no box, as for any other.
		if ev, _, derr := m.store.deleteBox(context.WithoutCancel(ctx), b, FormatTime(m.now())); derr == nil {
			rowKept = false
			m.bus.publish(ev)
		}
		return nil, &Error{Code: CodeValidationError, Message: err.Error(), Err: err}
	}
	if err != nil {
		return nil, m.failCreate(b, Errorf(CodeRuntimeError, "Failed to create BoxLite VM: %w", err))
	}
	b.Handle = handle
	b.Status = StatusRunning
	b.StartedAt = m.now()
	ev, err = m.store.updateBox(context.WithoutCancel(ctx), b, EventBoxStarted, FormatTime(b.StartedAt))
	if err != nil {
		_ = m.driver.Remove(m.ctx, handle)
		return nil, m.failCreate(b, err)
	}
	m.bus.publish(ev)
	reserved = false
	m.armLifetime(b.ID, spec.TTL, spec.IdleTimeout, spec.OnExpire, b.StartedAt, b.StartedAt)
	made := b.Box
	return &made, nil
}

// pullImage resolves ref through the image store, publishing progress.
// policy "" is the store's own; stores without PolicyPuller ignore it.
func (m *Manager) pullImage(ctx context.Context, ref string, policy PullPolicy) (*sandbox.Image, error) {
	if m.images == nil {
		return nil, nil
	}
	progress := func(p PullProgress) {
		m.bus.publish(Event{Time: m.now(), Type: EventImagePull, Pull: &p})
	}
	var img *sandbox.Image
	var err error
	if pp, ok := m.images.(sandbox.PolicyPuller); ok && policy != "" {
		img, err = pp.PullWithPolicy(ctx, ref, string(policy), progress)
	} else {
		img, err = m.images.Pull(ctx, ref, progress)
	}
	if err != nil {
		var coded *Error
		if errors.As(err, &coded) {
			return nil, err
		}
		return nil, &Error{Code: CodeImagePullFailed, Message: fmt.Sprintf("Failed to pull image '%s': %v", ref, err), Err: err}
	}
	return img, nil
}

// failCreate marks a box that could not be created as error and returns err.
func (m *Manager) failCreate(b *boxRow, err error) error {
	b.Status = StatusError
	b.ErrorCode = string(ErrorCode(err))
	b.ErrorMessage = ErrorMessage(err)
	ev, uerr := m.store.updateBox(context.WithoutCancel(m.ctx), b, EventBoxError, FormatTime(m.now()))
	if uerr != nil {
		m.log.Error("create: mark box error", "box", b.ID, "err", uerr)
	} else {
		m.bus.publish(ev)
	}
	return err
}

// envList turns an env map into KEY=VALUE pairs sorted by key.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Get returns a box by ID or name. Errors: BOX_NOT_FOUND.
func (m *Manager) Get(ctx context.Context, box string) (*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	return &b.Box, nil
}

// List returns the boxes matching filter, newest first.
func (m *Manager) List(ctx context.Context, filter BoxFilter) ([]*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	status := filter.Status
	if status == "all" {
		status = ""
	}
	rows, err := m.store.listBoxes(ctx, status)
	if err != nil {
		return nil, err
	}
	out := make([]*Box, len(rows))
	for i, r := range rows {
		out[i] = &r.Box
	}
	return out, nil
}

// Stop stops a running box: its running execs are canceled, its sandbox
// stopped (files kept) and its reservation released. Errors: BOX_NOT_FOUND,
// BOX_NOT_RUNNING. Driver failures are logged, not returned (as the API says).
func (m *Manager) Stop(ctx context.Context, box string) (*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b.Status != StatusRunning {
		return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running (status: %s)", box, b.Status)
	}
	return m.stopLocked(ctx, b)
}

// stopLocked stops the running box b, whose lock the caller holds.
func (m *Manager) stopLocked(ctx context.Context, b *boxRow) (*Box, error) {
	m.disarmLifetime(b.ID)
	m.cancelBoxExecs(b.ID, "box stopped")
	if b.Handle != "" {
		if err := m.driver.Stop(m.ctx, b.Handle); err != nil {
			m.log.Warn("stop: driver", "box", b.ID, "err", err)
		}
	}
	m.release(b.CPU, b.MemoryMB)
	m.forgetStats(b.ID)
	b.Status = StatusStopped
	b.StoppedAt = m.now()
	ev, err := m.store.updateBox(context.WithoutCancel(ctx), b, EventBoxStopped, FormatTime(b.StoppedAt))
	if err != nil {
		return nil, err
	}
	m.bus.publish(ev)
	return &b.Box, nil
}

// Start starts a stopped box again with the files it had; a hibernated box
// resumes with its memory (see Hibernate). Errors:
// BOX_NOT_FOUND, BOX_ALREADY_RUNNING, RUNTIME_ERROR (not stopped, driver
// failure), RESOURCE_EXCEEDED.
func (m *Manager) Start(ctx context.Context, box string) (*Box, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ok, err := m.resumeLocked(ctx, b); ok {
		if err != nil {
			return nil, err
		}
		return &b.Box, nil
	}
	switch {
	case b.Status == StatusRunning:
		return nil, Errorf(CodeBoxAlreadyRunning, "Box '%s' is already running", box)
	case b.Status != StatusStopped:
		return nil, Errorf(CodeRuntimeError, "Box '%s' cannot be started (status: %s)", box, b.Status)
	case b.Handle == "":
		return nil, Errorf(CodeRuntimeError, "Box has no BoxLite ID")
	}
	if err := m.reserve(b.CPU, b.MemoryMB, false); err != nil {
		return nil, err
	}
	if err := m.driver.Start(m.ctx, b.Handle); err != nil {
		m.release(b.CPU, b.MemoryMB)
		return nil, Errorf(CodeRuntimeError, "Failed to start BoxLite VM: %w", err)
	}
	b.Status = StatusRunning
	b.StartedAt = m.now()
	b.StoppedAt = time.Time{}
	b.ErrorCode, b.ErrorMessage = "", "" // why it died last time (see sandboxDied)
	ev, err := m.store.updateBox(context.WithoutCancel(ctx), b, EventBoxStarted, FormatTime(b.StartedAt))
	if err != nil {
		return nil, err
	}
	m.bus.publish(ev)
	if lt, err := m.store.getLifetime(ctx, b.ID); err == nil && lt != nil {
		m.armLifetime(b.ID, lt.TTL, lt.IdleTimeout, lt.OnExpire, b.StartedAt, b.StartedAt)
	}
	return &b.Box, nil
}

// Remove removes a box: its running execs are canceled, its sandbox and
// all its files destroyed, and its rows (box, execs, events) deleted. A
// running box needs force. Errors: BOX_NOT_FOUND, BOX_ALREADY_RUNNING.
func (m *Manager) Remove(ctx context.Context, box string, force bool) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return err
	}
	defer unlock()
	return m.removeLocked(ctx, b, force)
}

func (m *Manager) removeLocked(ctx context.Context, b *boxRow, force bool) error {
	if b.Status == StatusRunning && !force {
		return Errorf(CodeBoxAlreadyRunning, "Box is running. Use force=true to remove.")
	}
	m.disarmLifetime(b.ID)
	m.cancelBoxExecs(b.ID, "box removed")
	if b.Handle != "" {
		if err := m.driver.Remove(m.ctx, b.Handle); err != nil {
			m.log.Warn("remove: driver", "box", b.ID, "err", err)
		}
	}
	if b.Status == StatusRunning {
		m.release(b.CPU, b.MemoryMB)
	}
	m.forgetStats(b.ID)
	ev, logs, err := m.store.deleteBox(context.WithoutCancel(ctx), b, FormatTime(m.now()))
	if err != nil {
		return err
	}
	m.dropHibernation(b.ID)
	for _, id := range logs {
		if err := os.Remove(outLogPath(m.outDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("remove: output log", "exec", id, "err", err) // Open removes it later
		}
	}
	m.bus.publish(ev)
	m.nudgeMaintenance() // give the box's pages back
	return nil
}

// GC removes stopped boxes stopped more than olderThan ago and error boxes
// created more than olderThan ago, and returns how many it removed. A box
// that fails to go is logged and its error returned (joined with the
// others) after GC has tried every candidate.
func (m *Manager) GC(ctx context.Context, olderThan time.Duration) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.leave()
	cutoff := FormatTime(m.now().Add(-olderThan))
	ids, err := m.store.gcCandidates(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, id := range ids {
		b, unlock, err := m.getLocked(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			m.log.Warn("gc: read box", "box", id, "err", err)
			errs = append(errs, fmt.Errorf("gc: box %s: %w", id, err))
			continue
		}
		if b.Status == StatusStopped || b.Status == StatusError {
			if err := m.removeLocked(ctx, b, true); err != nil {
				m.log.Warn("gc: remove box", "box", id, "err", err)
				errs = append(errs, fmt.Errorf("gc: remove box %s: %w", id, err))
			} else {
				removed++
			}
		}
		unlock()
	}
	return removed, errors.Join(errs...)
}

// getLocked resolves a box and locks it, re-reading the row under the lock.
func (m *Manager) getLocked(ctx context.Context, box string) (*boxRow, func(), error) {
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, nil, err
	}
	unlock := m.lockBox(b.ID)
	b, err = m.store.getBox(ctx, b.ID)
	if err != nil {
		unlock()
		if ErrorCode(err) == CodeBoxNotFound {
			err = boxNotFound(box)
		}
		return nil, nil, err
	}
	return b, unlock, nil
}

// recover reconciles the database with the driver after a restart.
func (m *Manager) recover(ctx context.Context) error {
	// Boxes of runs a crash interrupted go first, with their execs and
	// output logs; their sandboxes are pruned below with everything else
	// no row keeps.
	runBoxes, err := m.store.runBoxes(ctx)
	if err != nil {
		return err
	}
	for _, b := range runBoxes {
		m.log.Warn("recover: removing the box of an interrupted run", "box", b.ID)
		_, logs, err := m.store.deleteBox(ctx, b, FormatTime(m.now()))
		if err != nil {
			return err
		}
		for _, id := range logs {
			_ = os.Remove(outLogPath(m.outDir, id))
		}
	}
	execs, err := m.store.runningExecs(ctx)
	if err != nil {
		return err
	}
	logs, err := m.store.outputLogs(ctx)
	if err != nil {
		return err
	}
	for _, e := range execs {
		size, last := int64(-1), int64(-1)
		if logs[e.ID] {
			// Keep the log's valid prefix: every published chunk is in it.
			if size, last, err = recoverOutLog(outLogPath(m.outDir, e.ID), e.ID); err != nil {
				return err
			}
		}
		if _, err := m.store.failOrphanExec(ctx, e, "server restarted", FormatTime(m.now()), size, last); err != nil {
			return err
		}
	}
	if err := m.repairLogs(ctx); err != nil {
		return err
	}
	// Logs the database does not know (a crash between a box's deletion
	// and the removal of its files, or before an exec's row committed).
	if ents, err := os.ReadDir(m.outDir); err == nil {
		for _, ent := range ents {
			id, ok := strings.CutSuffix(ent.Name(), ".log")
			if !ok || !logs[id] {
				if err := os.Remove(filepath.Join(m.outDir, ent.Name())); err != nil {
					m.log.Warn("recover: remove orphan output log", "file", ent.Name(), "err", err)
				}
			}
		}
	}
	boxes, err := m.store.listBoxes(ctx, "")
	if err != nil {
		return err
	}
	var keep []string
	for _, b := range boxes {
		if b.Handle != "" {
			keep = append(keep, b.Handle)
		}
		switch {
		case b.Status == StatusCreating && b.Handle == "":
			b.Status = StatusError
			b.ErrorCode = string(CodeRuntimeError)
			b.ErrorMessage = "server restarted while the box was being created"
			if _, err := m.store.updateBox(ctx, b, EventBoxError, FormatTime(m.now())); err != nil {
				return err
			}
		case b.Status == StatusRunning || b.Status == StatusCreating:
			state, err := m.driver.State(ctx, b.Handle)
			if err == nil && state == sandbox.Running {
				m.reservedCPU += b.CPU
				m.reservedMem += b.MemoryMB
				continue
			}
			m.log.Warn("recover: sandbox not running; marking box stopped", "box", b.ID, "state", state, "err", err)
			if state == sandbox.Stopped {
				_ = m.driver.Stop(ctx, b.Handle) // release what a dead sandbox still holds
			}
			b.Status = StatusStopped
			b.StoppedAt = m.now()
			if _, err := m.store.updateBox(ctx, b, EventBoxStopped, FormatTime(b.StoppedAt)); err != nil {
				return err
			}
		case b.Handle != "":
			// A box that is not running has no sandbox, but a crash during
			// Start (between the driver's Start and the row's update, or
			// with runsc still starting it) leaves one running: it holds
			// memory, cgroups and network that nothing accounts for, and
			// the next Start would fail. The database is the truth: the
			// box stays stopped and its sandbox goes (Prune then releases
			// the rest).
			if state, err := m.driver.State(ctx, b.Handle); err == nil && state == sandbox.Running {
				m.log.Warn("recover: the sandbox of a box that is not running runs (a crash interrupted its start); stopping it", "box", b.ID, "status", b.Status)
				if err := m.driver.Stop(ctx, b.Handle); err != nil {
					m.log.Warn("recover: stop the sandbox of a box that is not running", "box", b.ID, "err", err)
				}
			}
		}
	}
	if err := m.driver.Prune(ctx, keep); err != nil {
		m.log.Warn("recover: prune driver leftovers", "err", err)
	}
	return nil
}
