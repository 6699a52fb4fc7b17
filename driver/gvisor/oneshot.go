package gvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/sandbox"
	"golang.org/x/sys/unix"
)

var _ sandbox.OneShotter = (*Driver)(nil)

// CanOneShot reports whether OneShot works: as root only (rootless boxes
// are made by the init helper in their own namespaces).
func (d *Driver) CanOneShot() bool { return d.userns == nil }

// OneShot makes a box as Create does (same layer, volumes, limits,
// network and isolation flags: the bundle differs only in its process)
// and runs proc.Cmd as the sandbox's first process with a foreground
// `runsc run`: no init, no agent, no `runsc exec`. It returns once runsc
// runs. The process's Wait reports the command's exit code once the
// sandbox is gone (runsc deletes it itself); what stays on the host (the
// box's files and mounts, its network) goes with Remove(handle). A command
// that cannot start is a Wait error wrapping ErrInvalid. Rootless, and for
// a process with stdin or a terminal, OneShot returns ErrNoOneShot.
func (d *Driver) OneShot(ctx context.Context, spec sandbox.Spec, proc sandbox.ProcessSpec) (string, sandbox.Process, error) {
	if d.userns != nil {
		return "", nil, fmt.Errorf("gvisor: one-shot: rootless: %w", sandbox.ErrNoOneShot)
	}
	if proc.TTY || proc.Stdin != nil {
		return "", nil, fmt.Errorf("gvisor: one-shot: stdin or a terminal: %w", sandbox.ErrNoOneShot)
	}
	if len(proc.Cmd) == 0 {
		return "", nil, fmt.Errorf("gvisor: one-shot: empty command: %w", boxapi.ErrInvalid)
	}
	if proc.Dir != "" && !filepath.IsAbs(proc.Dir) {
		return "", nil, fmt.Errorf("gvisor: working directory %q is not absolute: %w", proc.Dir, boxapi.ErrInvalid)
	}
	h, m, unlock, err := d.prepare(ctx, spec)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	p, err := d.runOneShot(ctx, h, m, proc)
	if err != nil {
		if derr := d.destroy(context.WithoutCancel(ctx), h); derr != nil {
			d.log.Warn("gvisor: cleanup after failed one-shot", "handle", h, "err", derr)
		}
		return "", nil, err
	}
	d.log.Debug("gvisor: one-shot started", "handle", h, "box", spec.BoxID)
	return h, p, nil
}

// oneShotConfig is the bundle of a one-shot box: a normal box's, with
// proc as its process (the user, env, working directory and capabilities
// an exec of proc would get).
func (d *Driver) oneShotConfig(h string, m *boxMeta, proc sandbox.ProcessSpec) ociSpec {
	s := d.bundleConfig(h, m)
	dir := proc.Dir
	if dir == "" {
		dir = m.Workdir
	}
	ep := execProcess(m, proc, dir)
	s.Process.Args, s.Process.Env, s.Process.Cwd = ep.Args, ep.Env, ep.Cwd
	s.Process.User, s.Process.Capabilities = ep.User, ep.Capabilities
	// No init and no agent: the helper and the agent's directory are not
	// mounted (less for the gofer to serve; nothing else changes).
	var mounts []ociMount
	for _, mt := range s.Mounts {
		if mt.Destination != initMount && mt.Destination != boxinit.AgentDir {
			mounts = append(mounts, mt)
		}
	}
	s.Mounts = mounts
	return s
}

// runOneShot mounts the box, writes its bundle and starts `runsc run` in
// the foreground with the command's output on pipes to proc's writers and
// runsc's own errors on a third (--log-fd).
func (d *Driver) runOneShot(ctx context.Context, h string, m *boxMeta, proc sandbox.ProcessSpec) (_ *oneShot, err error) {
	defer func() {
		if err != nil {
			_ = d.teardown(context.WithoutCancel(ctx), h, m)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.mountAndNet(ctx, h, m); err != nil {
		return nil, err
	}
	cb, _ := json.MarshalIndent(d.oneShotConfig(h, m, proc), "", "  ")
	if err := writeFileAtomic(filepath.Join(d.boxDir(h), "config.json"), cb); err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	var files []*os.File // every pipe end, closed on failure
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	stdoutR, stdoutW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	_, _ = unix.FcntlInt(stdoutW.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	stderrR, stderrW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	logR, logW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	args := append(d.globalArgs(m), "--log-fd=3", "run", "--bundle="+d.boxDir(h), h)
	cmd := exec.Command(d.runscPath, args...)
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	cmd.ExtraFiles = []*os.File{logW}
	// runsc's shared null-netns must not go while this sandbox is being
	// made (see releaseNullNetNS): held until its state file exists.
	d.rootMu.RLock()
	if err := cmd.Start(); err != nil {
		d.rootMu.RUnlock()
		closeAll()
		return nil, fmt.Errorf("gvisor: runsc run: %w: %w", err, boxapi.ErrRuntime)
	}
	stdoutW.Close()
	stderrW.Close()
	logW.Close()
	p := &oneShot{d: d, h: h, m: m, cmd: cmd, done: make(chan struct{}), started: make(chan struct{})}
	go func() {
		defer close(p.started)
		// runsc's shared null-netns is held until the state file exists;
		// the command runs once the state says so.
		st := p.pollState(func(st *runscState) bool { return st != nil })
		d.rootMu.RUnlock()
		if st != nil {
			p.pollState((*runscState).commandStarted)
		}
	}()
	var pumps sync.WaitGroup
	errBuf := &limitWriter{max: 64 << 10}
	for _, pw := range []struct {
		r *os.File
		w io.Writer
	}{{stdoutR, proc.Stdout}, {stderrR, proc.Stderr}, {logR, errBuf}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			pump(pw.r, pw.w)
		}()
	}
	start := time.Now()
	go func() {
		werr := cmd.Wait()
		deadline := time.Now().Add(drainAfterExit)
		for _, r := range []*os.File{stdoutR, stderrR, logR} {
			_ = r.SetReadDeadline(deadline)
		}
		pumps.Wait()
		for _, r := range []*os.File{stdoutR, stderrR, logR} {
			r.Close()
		}
		p.code, p.err = p.exitStatus(werr, errBuf.String())
		d.log.Debug("runsc run", "handle", h, "dur", time.Since(start), "code", p.code, "err", p.err)
		close(p.done)
	}()
	return p, nil
}

// oneShot is the command of a one-shot box: a foreground `runsc run`.
type oneShot struct {
	d   *Driver
	h   string
	m   *boxMeta
	cmd *exec.Cmd

	mu     sync.Mutex
	killed bool // Signal killed runsc itself on the host

	done    chan struct{} // closed when code and err are final
	started chan struct{} // closed once runsc reports the command running
	code    int
	err     error
}

// pollState reads the box's runsc state every 2 ms until until accepts it,
// and returns it; nil when the run ended first.
func (p *oneShot) pollState(until func(*runscState) bool) *runscState {
	for {
		if st := p.d.readState(p.h); until(st) {
			return st
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Started is closed once the command runs (runsc's state says running; the
// sandbox booted) or the run ended: a timeout counts from then, as for an
// exec in a running box (sandbox.StartNotifier).
func (p *oneShot) Started() <-chan struct{} { return p.started }

// exitStatus turns the end of `runsc run` into the command's exit code;
// runsc's own error text (its --log-fd) makes it an error.
func (p *oneShot) exitStatus(werr error, runscErr string) (int, error) {
	st := p.cmd.ProcessState
	if st == nil {
		return -1, fmt.Errorf("gvisor: runsc run: %w: %w", werr, boxapi.ErrRuntime)
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	p.mu.Lock()
	killed := p.killed
	p.mu.Unlock()
	if ws.Signaled() {
		if killed {
			return 128 + int(syscall.SIGKILL), nil
		}
		return -1, fmt.Errorf("gvisor: runsc run killed on the host by %v: %w", ws.Signal(), boxapi.ErrRuntime)
	}
	code := ws.ExitStatus()
	if code != runscExitFailure || runscErr == "" {
		return code, nil
	}
	msg := runscError(runscErr)
	if strings.Contains(msg, "starting container") || strings.Contains(msg, "starting root container") {
		return -1, fmt.Errorf("gvisor: %s: %w", msg, boxapi.ErrInvalid)
	}
	return -1, fmt.Errorf("gvisor: runsc run: %s: %w", msg, boxapi.ErrRuntime)
}

// runscError is the message of runsc's JSON error log (raw text when it is
// not JSON).
func runscError(log string) string {
	var e struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal([]byte(strings.TrimSpace(log)), &e) == nil && e.Msg != "" {
		return e.Msg
	}
	return strings.TrimSpace(log)
}

// Wait waits for the command to exit, the sandbox to be gone and the
// output to be written.
func (p *oneShot) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Signal sends sig to every process of the box (SIGKILL ends it). When
// runsc cannot (the sandbox is not made yet, or broken), a SIGKILL kills
// runsc and the box's processes on the host instead. Signalling a command
// that has exited is not an error.
func (p *oneShot) Signal(ctx context.Context, sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_, err := p.d.runsc(ctx, p.m, 30*time.Second, "kill", "--all", p.h, fmt.Sprint(int(sig)))
	if err == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil // exited meanwhile
	default:
	}
	if sig != syscall.SIGKILL {
		return fmt.Errorf("gvisor: signal: %w: %w", err, boxapi.ErrRuntime)
	}
	p.d.log.Debug("gvisor: one-shot: runsc kill failed; killing on the host", "handle", p.h, "err", err)
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if kerr := p.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
		return fmt.Errorf("gvisor: signal: %w: %w", kerr, boxapi.ErrRuntime)
	}
	p.d.killStrays(p.h)
	return nil
}

// Resize fails: a one-shot command has no terminal.
func (p *oneShot) Resize(context.Context, boxapi.TermSize) error {
	return fmt.Errorf("gvisor: resize: not a TTY process: %w", boxapi.ErrInvalid)
}
