package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Start boots a stopped box again from its disk.
func (d *Driver) Start(ctx context.Context, handle string) error {
	b, err := d.get(handle)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running() {
		return fmt.Errorf("qemu: sandbox %s is already running: %w", handle, boxapi.ErrConflict)
	}
	return d.boot(ctx, b)
}

// Stop asks the agent to kill every process, sync and power off, and waits
// for QEMU to exit; it falls back to QMP quit, then SIGKILL.
func (d *Driver) Stop(ctx context.Context, handle string) error {
	b, err := d.get(handle)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return d.stop(ctx, b)
}

// stop is Stop. Callers hold b.mu.
func (d *Driver) stop(ctx context.Context, b *box) error {
	handle := b.handle
	if !b.running() {
		return d.stopped(ctx, b)
	}
	pid := b.state.PID
	conn := b.conn
	if conn == nil || conn.Closed() {
		if err := d.connect(ctx, b); err == nil {
			conn = b.conn
		}
	}
	if conn != nil && !conn.Closed() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := call(sctx, conn, &agentproto.Request{Op: agentproto.OpShutdown})
		cancel()
		if err == nil {
			if waitGone(ctx, b.handle, []int{pid}, shutdownTimeout) == nil {
				return d.stopped(ctx, b)
			}
		}
		d.log.Warn("qemu: clean shutdown failed", "handle", handle, "err", err)
	}
	if err := qmp(ctx, b.dir, "quit"); err == nil {
		if waitGone(ctx, b.handle, []int{pid}, 5*time.Second) == nil {
			return d.stopped(ctx, b)
		}
	}
	return d.stopped(ctx, b)
}

// stopped kills what is left of a stopped box and records it. Callers
// hold b.mu.
func (d *Driver) stopped(ctx context.Context, b *box) error {
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
	if err := killBox(context.WithoutCancel(ctx), b.handle); err != nil {
		return err
	}
	for _, s := range []string{agentSock, qmpSock, pidFile} {
		os.Remove(filepath.Join(b.dir, s))
	}
	d.cleanVolumes(b)
	if err := d.netDown(ctx, b); err != nil {
		return err
	}
	if b.state.PID != 0 {
		b.state.PID = 0
		return b.save()
	}
	return nil
}

// Remove kills the box's processes and deletes its directory.
func (d *Driver) Remove(ctx context.Context, handle string) error {
	b, err := d.get(handle)
	if errors.Is(err, boxapi.ErrNotFound) {
		if validHandle(handle) {
			err := d.removeDir(ctx, handle, d.boxDir(handle))
			if d.net != nil {
				err = errors.Join(err, d.net.Down(context.WithoutCancel(ctx), handle))
			}
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
	if err := killBox(context.WithoutCancel(ctx), b.handle); err != nil {
		return err
	}
	if err := d.netDown(ctx, b); err != nil {
		return err
	}
	if err := d.removeDir(ctx, b.handle, b.dir); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.boxes, handle)
	d.mu.Unlock()
	return nil
}

func (d *Driver) removeDir(ctx context.Context, handle, dir string) error {
	if err := killBox(context.WithoutCancel(ctx), handle); err != nil {
		return err
	}
	if err := unmountAll(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("qemu: remove %s: %w", dir, err)
	}
	return nil
}

// State reports whether the box's QEMU is alive.
func (d *Driver) State(ctx context.Context, handle string) (sandbox.State, error) {
	b, err := d.get(handle)
	if errors.Is(err, boxapi.ErrNotFound) {
		return sandbox.Missing, nil
	}
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := os.Stat(filepath.Join(b.dir, stateFile)); err != nil {
		return sandbox.Missing, nil
	}
	if b.running() {
		return sandbox.Running, nil
	}
	return sandbox.Stopped, nil
}

// Prune removes every box directory in Dir whose handle is not in keep,
// with its processes, and what a crash left behind (stray box directories,
// template VMs being made). Template snapshots are kept.
func (d *Driver) Prune(ctx context.Context, keep []string) error {
	ents, err := os.ReadDir(filepath.Join(d.dir, "boxes"))
	if err != nil {
		return fmt.Errorf("qemu: prune: %w", err)
	}
	errs := []error{d.pruneTemplates(ctx)}
	for _, e := range ents {
		if slices.Contains(keep, e.Name()) {
			continue
		}
		if validHandle(e.Name()) {
			if err := d.Remove(ctx, e.Name()); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		stray := filepath.Join(d.dir, "boxes", e.Name())
		if err := unmountAll(stray); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.RemoveAll(stray))
	}
	if d.net != nil {
		// Networks of boxes that are gone, or stopped (a crash between
		// QEMU's end and the network's), are removed.
		running := map[string]bool{}
		for _, h := range keep {
			if b, err := d.get(h); err == nil {
				b.mu.Lock()
				running[h] = b.running()
				b.mu.Unlock()
			}
		}
		errs = append(errs, d.net.Prune(ctx, running))
	}
	return errors.Join(errs...)
}
