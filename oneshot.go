package boxrun

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/boxrun/boxrun/sandbox"
)

// The fast path of Run, for drivers that implement sandbox.OneShotter: the
// command is the sandbox's first process (no init, no agent, no exec into
// a running box), and what the host keeps of the box (mounts, files,
// network) is removed after Run has returned.
//
// The records are those of the generic path: a box row (box.created, then
// box.started once the command runs), an exec row with its output events
// and exit, and box.removed, all gone when Run returns. The box row is
// marked in run_boxes in the same transaction that inserts it: a crash
// before the run ends leaves a marked row, which the next Open deletes
// (recover), and a sandbox no row keeps, which the driver's Prune removes.

// isOneShot reports whether box id is the box of a one-shot run in
// progress: its sandbox comes and goes with the command, so the sandbox
// watcher leaves it alone.
func (m *Manager) isOneShot(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.oneShots[id]
}

// oneShotter returns the driver's OneShotter when Run can use it for spec.
func (m *Manager) oneShotter(spec *BoxSpec) sandbox.OneShotter {
	shot, ok := m.driver.(sandbox.OneShotter)
	if !ok || !shot.CanOneShot() {
		return nil
	}
	withDefaults := *spec
	if validateSpec(&withDefaults) == nil && m.poolEntry(&withDefaults) != nil { // a warm sandbox is faster still
		return nil
	}
	return shot
}

// runOneShot is Run on a OneShotter: spec is the run's box, req its
// command, limit its output cap.
func (m *Manager) runOneShot(ctx context.Context, shot sandbox.OneShotter, spec BoxSpec, req RunRequest, limit int64) (*RunResult, error) {
	if err := validateSpec(&spec); err != nil {
		return nil, err
	}
	if err := m.validateNetwork(&spec); err != nil {
		return nil, err
	}
	for _, v := range spec.Volumes {
		if _, err := os.Stat(v.HostPath); err != nil {
			return nil, Errorf(CodeRuntimeError, "Volume host path does not exist: %s", v.HostPath)
		}
	}
	if err := m.reserve(spec.CPU, spec.MemoryMB, true); err != nil {
		return nil, err
	}
	b := &boxRow{Box: Box{
		ID: newID("box_"), Status: StatusCreating, Image: spec.Image,
		CPU: spec.CPU, MemoryMB: spec.MemoryMB, DiskSizeGB: spec.DiskSizeGB, Network: spec.Network,
		Workdir: DefaultWorkdir, Env: spec.Env, Volumes: spec.Volumes, CreatedAt: m.now(),
	}, run: true}
	m.mu.Lock()
	m.oneShots[b.ID] = true
	m.mu.Unlock()
	// From here on the box goes when Run returns, whatever happens.
	defer m.endOneShot(ctx, b.ID)

	out := &runOutput{limit: limit}
	r, proc, err := m.startOneShot(ctx, shot, b, spec, req, limit, out)
	if err != nil {
		return nil, canceled(ctx, err)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.kill(ExecCanceled, "")
		<-r.done
		return nil, canceled(ctx, ctx.Err())
	}
	// A command that never ran is an error, as on the generic path.
	if _, werr := proc.Wait(); errors.Is(werr, ErrInvalid) {
		return nil, Errorf(CodeRuntimeError, "Failed to start execution: %w", werr)
	}
	return out.result(r.final, limit), nil
}

// startOneShot records the box, starts the command and records the exec;
// it returns once the command runs (or failed to start: then the box is
// still recorded, for endOneShot to remove).
func (m *Manager) startOneShot(ctx context.Context, shot sandbox.OneShotter, b *boxRow, spec BoxSpec, req RunRequest, limit int64, out *runOutput) (*execRun, sandbox.Process, error) {
	unlock := m.lockBox(b.ID)
	defer unlock()
	ev, err := m.store.insertBox(ctx, b, EventBoxCreated)
	if err != nil {
		m.release(spec.CPU, spec.MemoryMB)
		return nil, nil, err
	}
	m.bus.publish(ev)

	m.imageMu.RLock()
	defer m.imageMu.RUnlock()
	img, err := m.pullImage(ctx, spec.Image, PullMissing)
	if err != nil {
		return nil, nil, err
	}
	sb := sandbox.Spec{
		BoxID: b.ID, Image: img, CPU: b.CPU, MemoryMB: b.MemoryMB, DiskSizeGB: b.DiskSizeGB,
		Network: b.Network, Volumes: b.Volumes,
	}
	if img != nil {
		b.ImageDigest = img.Digest
		if wd := img.Config.WorkingDir; wd != "" && strings.HasPrefix(wd, "/") {
			b.Workdir = wd
		}
		sb.Env = append(sb.Env, img.Config.Env...)
		sb.User = img.Config.User
	}
	sb.Workdir = b.Workdir
	sb.Env = append(sb.Env, envList(b.Env)...)

	e := &Exec{
		ID: newID("exec_"), BoxID: b.ID, Status: ExecRunning, Cmd: req.Cmd, Env: req.Env,
		TimeoutMS: req.TimeoutMS,
	}
	r := newExecRun(m, e, map[string]io.Writer{"stdout": out.writer(&out.stdout), "stderr": out.writer(&out.stderr)})
	r.limit = limit
	// Output waits until the exec row exists (it is inserted once the
	// sandbox runs, after box.started, as on the generic path).
	gate := &gatedOutput{ready: make(chan struct{})}
	proc := sandbox.ProcessSpec{
		Cmd: req.Cmd, Env: envList(req.Env), Dir: b.Workdir,
		Stdout: gate.writer(r.writer("stdout")), Stderr: gate.writer(r.writer("stderr")),
	}
	// The sandbox outlives a canceled request only until Run kills it:
	// the driver gets the Manager's context, as Create's does.
	handle, p, err := shot.OneShot(m.ctx, sb, proc)
	if err != nil {
		gate.drop()
		return nil, nil, Errorf(CodeRuntimeError, "Failed to create BoxLite VM: %w", err)
	}
	b.Handle = handle
	b.Status = StatusRunning
	b.StartedAt = m.now()
	kill := func() {
		gate.drop()
		_ = p.Signal(context.WithoutCancel(ctx), syscall.SIGKILL)
		_, _ = p.Wait()
	}
	if ev, err = m.store.updateBox(context.WithoutCancel(ctx), b, EventBoxStarted, FormatTime(b.StartedAt)); err != nil {
		kill()
		return nil, nil, err
	}
	m.bus.publish(ev)

	e.CreatedAt = m.now()
	if ev, err = m.registerRun(context.WithoutCancel(ctx), r); err != nil {
		kill()
		return nil, nil, err
	}
	m.bus.publish(ev)
	r.started(p)
	gate.open()
	go r.pump()
	return r, p, nil
}

// endOneShot removes the box of a one-shot run: the records now (the box is
// gone when Run returns, as the API says), the sandbox's host resources
// after (in the background; a crash before the end leaves them to the
// driver's Prune at the next Open).
func (m *Manager) endOneShot(ctx context.Context, id string) {
	defer func() {
		m.mu.Lock()
		delete(m.oneShots, id)
		m.mu.Unlock()
	}()
	ctx = context.WithoutCancel(ctx)
	unlock := m.lockBox(id)
	defer unlock()
	b, err := m.store.getBox(ctx, id)
	if err != nil {
		return // never recorded, or removed meanwhile (that released it)
	}
	m.cancelBoxExecs(b.ID, "box removed")
	if b.Status == StatusRunning || b.Status == StatusCreating {
		m.release(b.CPU, b.MemoryMB)
	}
	m.forgetStats(b.ID)
	ev, logs, err := m.store.deleteBox(ctx, b, FormatTime(m.now()))
	if err != nil {
		m.log.Warn("run: remove box", "box", b.ID, "err", err) // Open removes it
	}
	for _, l := range logs {
		if err := os.Remove(outLogPath(m.outDir, l)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("run: remove output log", "exec", l, "err", err)
		}
	}
	if err == nil {
		m.bus.publish(ev)
	}
	if b.Handle == "" {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.driver.Remove(context.WithoutCancel(m.ctx), b.Handle); err != nil {
			m.log.Warn("run: remove sandbox", "box", b.ID, "err", err) // Open prunes it
		}
		m.nudgeMaintenance()
	}()
}

// gatedOutput holds a one-shot's output until its exec row exists (open),
// or drops it when there will be none (drop).
type gatedOutput struct {
	ready   chan struct{}
	once    sync.Once
	dropped bool // set before ready is closed
}

func (g *gatedOutput) open() { g.once.Do(func() { close(g.ready) }) }

func (g *gatedOutput) drop() {
	g.once.Do(func() {
		g.dropped = true
		close(g.ready)
	})
}

func (g *gatedOutput) writer(w io.Writer) io.Writer { return gatedWriter{g, w} }

type gatedWriter struct {
	g *gatedOutput
	w io.Writer
}

// Write waits for the gate, then writes (or drops).
func (w gatedWriter) Write(p []byte) (int, error) {
	<-w.g.ready
	if w.g.dropped {
		return len(p), nil
	}
	return w.w.Write(p)
}
