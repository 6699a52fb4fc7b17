package boxrun

import (
	"context"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// sandboxWatchInterval is how often the Manager checks that the sandboxes of
// running boxes still run: a sandbox that dies under a box (OOM kill, runtime
// crash) is noticed within this interval plus one driver State call.
const sandboxWatchInterval = 500 * time.Millisecond

// watchSandboxes runs until the Manager closes, marking boxes whose sandbox
// died on its own stopped.
func (m *Manager) watchSandboxes() {
	defer m.wg.Done()
	t := time.NewTicker(sandboxWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		boxes, err := m.store.listBoxes(m.ctx, StatusRunning)
		if err != nil {
			continue
		}
		for _, b := range boxes {
			if b.Handle == "" || m.isOneShot(b.ID) || m.sandboxRuns(b.Handle) {
				continue
			}
			m.sandboxDied(b.ID)
		}
	}
}

// sandboxRuns reports whether the driver still has the sandbox running
// (errors count as running: only a definite answer stops a box).
func (m *Manager) sandboxRuns(handle string) bool {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	st, err := m.driver.State(ctx, handle)
	return err != nil || st == sandbox.Running
}

// sandboxDied stops a running box whose sandbox is gone, under the box lock
// (a Stop, Start or Remove in between wins): its execs fail with the reason,
// the dead sandbox's leftovers are released (files kept), the box becomes
// stopped with the reason in error_message and box.stopped is published.
// Start brings it back.
func (m *Manager) sandboxDied(id string) {
	if err := m.enter(); err != nil {
		return
	}
	defer m.leave()
	ctx := context.WithoutCancel(m.ctx)
	b, unlock, err := m.getLocked(m.ctx, id)
	if err != nil {
		return
	}
	defer unlock()
	if b.Status != StatusRunning || b.Handle == "" || m.isOneShot(b.ID) || m.sandboxRuns(b.Handle) {
		return
	}
	reason := "sandbox exited"
	if r, ok := m.driver.(sandbox.ExitReasoner); ok {
		if s := r.ExitReason(ctx, b.Handle); s != "" {
			reason = s
		}
	}
	m.log.Warn("sandbox died under a running box", "box", b.ID, "reason", reason)
	// The box is marked and announced first (users wait on that); the
	// execs and the dead sandbox's leftovers are dealt with after, still
	// under the box lock, so a Start waits for the cleanup.
	defer func() {
		m.cancelBoxExecs(b.ID, "Sandbox died: "+reason)
		if err := m.driver.Stop(ctx, b.Handle); err != nil {
			m.log.Warn("sandbox died: cleanup", "box", b.ID, "err", err)
		}
	}()
	m.release(b.CPU, b.MemoryMB)
	m.forgetStats(b.ID)
	b.Status = StatusStopped
	b.StoppedAt = m.now()
	b.ErrorCode = string(CodeRuntimeError)
	b.ErrorMessage = "Sandbox died: " + reason
	ev, err := m.store.updateBox(ctx, b, EventBoxStopped, FormatTime(b.StoppedAt))
	if err != nil {
		m.log.Warn("sandbox died: update box", "box", b.ID, "err", err)
		return
	}
	m.bus.publish(ev)
}
