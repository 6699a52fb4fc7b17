package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/ptyutil"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
	"golang.org/x/sys/unix"
)

// drainAfterExit bounds how long Wait keeps reading output after the
// process exited, when a background child still holds the pipes open.
const drainAfterExit = 100 * time.Millisecond

// runscExitFailure is the exit status runsc uses for its own failures (G4).
const runscExitFailure = 128

func newCmd(path string, args []string, stdin io.Reader, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd
}

// process is a running `runsc exec`.
type process struct {
	d   *Driver
	h   string
	m   *boxMeta
	cmd *exec.Cmd
	pid int      // the process's PID inside the sandbox
	pty *os.File // the pty master of a TTY process

	done chan struct{} // closed when code and err are final
	code int
	err  error
}

// Exec starts spec.Cmd in the sandbox with `runsc exec` and returns once the
// process runs inside. A command that cannot start (missing program, bad
// working directory) is an error wrapping ErrInvalid, not an exit code; a
// box that is not running gives ErrConflict, a sandbox that died ErrRuntime.
// ctx bounds the start only: once Exec has returned, the process runs
// until it exits or is signalled.
func (d *Driver) Exec(ctx context.Context, handle string, spec sandbox.ProcessSpec) (sandbox.Process, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return nil, fmt.Errorf("gvisor: empty command: %w", boxapi.ErrInvalid)
	}
	if spec.Dir != "" && !filepath.IsAbs(spec.Dir) {
		return nil, fmt.Errorf("gvisor: working directory %q is not absolute: %w", spec.Dir, boxapi.ErrInvalid)
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("gvisor: env entry %q is not KEY=VALUE: %w", kv, boxapi.ErrInvalid)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gvisor: exec: %w", err)
	}
	m, err := d.runningMeta(handle)
	if err != nil {
		return nil, err
	}
	if c, err := d.agent(ctx, handle); err == nil {
		p, fallback, err := d.agentExec(ctx, handle, c, m, spec)
		if !fallback {
			return p, err
		}
	}
	p, startErr, err := d.startProcess(ctx, handle, m, spec)
	if err != nil {
		return nil, err
	}
	if startErr != "" {
		if !d.running(handle) {
			return nil, fmt.Errorf("gvisor: exec %q: sandbox %s stopped: %s: %w", spec.Cmd[0], handle, startErr, boxapi.ErrRuntime)
		}
		return nil, fmt.Errorf("gvisor: exec %q: %s: %w", spec.Cmd[0], startErr, boxapi.ErrInvalid)
	}
	return p, nil
}

// runningMeta returns the meta of a running box, or ErrNotFound /
// ErrConflict.
func (d *Driver) runningMeta(h string) (*boxMeta, error) {
	if !d.exists(h) {
		return nil, notFound(h)
	}
	m, err := d.readMeta(h)
	if err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	if !d.running(h) {
		return nil, fmt.Errorf("gvisor: sandbox %s is not running: %w", h, boxapi.ErrConflict)
	}
	return m, nil
}

// startProcess runs `runsc exec` for spec. It returns the process, or the
// text of runsc's own error when the command could not start (startErr), or
// err for anything else.
func (d *Driver) startProcess(ctx context.Context, h string, m *boxMeta, spec sandbox.ProcessSpec) (_ *process, startErr string, _ error) {
	dir := spec.Dir
	if dir == "" {
		dir = m.Workdir
	}
	procJSON, err := json.Marshal(execProcess(m, spec, dir))
	if err != nil {
		return nil, "", fmt.Errorf("gvisor: %w", err)
	}
	args := append(d.globalArgs(m), "exec", "--internal-pid-file=/proc/self/fd/3", "--process=/proc/self/fd/4", h)

	// runsc writes the internal PID into fd 3, a pipe: it is not a regular
	// file, so runsc writes in place, and the read returns the moment the
	// process is running inside. EOF without a PID means it never started.
	pidR, pidW, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("gvisor: %w", err)
	}

	// The process spec goes through fd 4, another pipe, written in the
	// background (it may be larger than the pipe buffer).
	procR, procW, err := os.Pipe()
	if err != nil {
		pidR.Close()
		pidW.Close()
		return nil, "", fmt.Errorf("gvisor: %w", err)
	}
	go func() {
		_, _ = procW.Write(procJSON)
		procW.Close()
	}()

	p := &process{d: d, h: h, m: m, done: make(chan struct{})}
	cmd := exec.Command(d.runscPath, args...)
	cmd.SysProcAttr = d.userns.attr()
	cmd.ExtraFiles = []*os.File{pidW, procR}
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		pidW.Close()
		procR.Close()
	}
	var stdoutR, stderrR, stdinW *os.File
	if spec.TTY {
		master, tty, err := ptyutil.Open(spec.Size.Rows, spec.Size.Cols)
		if err != nil {
			closeChildEnds()
			pidR.Close()
			return nil, "", fmt.Errorf("gvisor: open pty: %w", err)
		}
		p.pty = master
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
		childEnds = append(childEnds, tty)
		stdoutR = master
	} else {
		var stdoutW, stderrW *os.File
		if stdoutR, stdoutW, err = os.Pipe(); err != nil {
			closeChildEnds()
			return nil, "", fmt.Errorf("gvisor: %w", err)
		}
		childEnds = append(childEnds, stdoutW)
		// A larger pipe means fewer wakeups for bulk output (best effort).
		_, _ = unix.FcntlInt(stdoutW.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		if stderrR, stderrW, err = os.Pipe(); err != nil {
			stdoutR.Close()
			closeChildEnds()
			return nil, "", fmt.Errorf("gvisor: %w", err)
		}
		childEnds = append(childEnds, stderrW)
		cmd.Stdout, cmd.Stderr = stdoutW, stderrW
		if spec.Stdin != nil {
			var stdinR *os.File
			if stdinR, stdinW, err = os.Pipe(); err != nil {
				stdoutR.Close()
				stderrR.Close()
				closeChildEnds()
				return nil, "", fmt.Errorf("gvisor: %w", err)
			}
			childEnds = append(childEnds, stdinR)
			cmd.Stdin = stdinR
		}
	}
	closeParentEnds := func() {
		for _, f := range []*os.File{stdoutR, stderrR, stdinW} {
			if f != nil {
				f.Close()
			}
		}
	}
	if err := cmd.Start(); err != nil {
		closeChildEnds()
		closeParentEnds()
		pidR.Close()
		return nil, "", fmt.Errorf("gvisor: runsc exec: %w", err)
	}
	closeChildEnds()
	p.cmd = cmd

	// Output pumps. They start once the start is known: before that,
	// anything on stderr (or the terminal) is runsc's own error text, which
	// goes to errBuf instead of the caller's writers.
	started := make(chan struct{})
	var startedOK bool // written before started is closed
	errBuf := &limitWriter{max: 64 << 10}
	var pumps sync.WaitGroup
	startPump := func(r *os.File, w io.Writer) {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			<-started
			if !startedOK {
				w = errBuf
			}
			pump(r, w)
		}()
	}
	startPump(stdoutR, spec.Stdout)
	if stderrR != nil {
		startPump(stderrR, spec.Stderr)
	}
	// Stdin ends at its EOF, or at the first write after the process
	// exited (the pipe or terminal is closed then). A terminal cannot be
	// half-closed: it gets the EOF character instead, also without Stdin.
	switch {
	case spec.TTY:
		go func() { _ = ptyutil.CopyInput(p.pty, spec.Stdin) }()
	case spec.Stdin != nil:
		go func() {
			_, _ = io.Copy(stdinW, spec.Stdin)
			stdinW.Close()
		}()
	}

	// The waiter: process exit, then a bounded drain of the output.
	go func() {
		werr := cmd.Wait()
		deadline := time.Now().Add(drainAfterExit)
		stdoutR.SetReadDeadline(deadline)
		if stderrR != nil {
			stderrR.SetReadDeadline(deadline)
		}
		pumps.Wait()
		closeParentEnds()
		p.code, p.err = p.exitStatus(werr)
		close(p.done)
	}()

	pidc := make(chan int, 1)
	go func() {
		defer pidR.Close()
		buf := make([]byte, 32)
		n, _ := pidR.Read(buf)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
		pidc <- pid
	}()
	select {
	case pid := <-pidc:
		p.pid = pid
		startedOK = pid > 0
		close(started)
		if startedOK {
			return p, "", nil
		}
		<-p.done
		msg := strings.TrimSpace(errBuf.String())
		if msg == "" {
			msg = fmt.Sprintf("runsc exec exited with %d", p.code)
		}
		return nil, msg, nil
	case <-ctx.Done():
		// The process may still start: kill it once its PID is known.
		go func() {
			pid := <-pidc
			p.pid = pid
			startedOK = pid > 0
			close(started)
			if startedOK {
				_, _ = d.runsc(context.Background(), m, 30*time.Second, "kill", "--pgid", strconv.Itoa(pid), h, "KILL")
			}
		}()
		return nil, "", fmt.Errorf("gvisor: exec: %w", ctx.Err())
	}
}

// ociExecProcess is the OCI process spec `runsc exec --process` reads.
type ociExecProcess struct {
	Terminal     bool                `json:"terminal"`
	User         ociUser             `json:"user"`
	Args         []string            `json:"args"`
	Env          []string            `json:"env"`
	Cwd          string              `json:"cwd"`
	Capabilities map[string][]string `json:"capabilities"`
}

type ociUser struct {
	UID            uint32   `json:"uid"`
	GID            uint32   `json:"gid"`
	AdditionalGids []uint32 `json:"additionalGids,omitempty"`
}

// execProcess is the process spec of spec in dir: the box's user, env
// (sandbox env, then spec.Env, then HOME from the user's passwd entry unless
// set) and capabilities. A non-root user gets no effective or permitted
// capabilities (only the bounding set), as a setuid to it would leave.
func execProcess(m *boxMeta, spec sandbox.ProcessSpec, dir string) ociExecProcess {
	env := mergeEnv(m.Env, spec.Env)
	if m.User.Home != "" && !userdb.HasEnv(env, "HOME") {
		env = append(env, "HOME="+m.User.Home)
	}
	caps := map[string][]string{"bounding": defaultCaps(), "effective": {}, "permitted": {}}
	if m.User.UID == 0 {
		caps["effective"], caps["permitted"] = defaultCaps(), defaultCaps()
	}
	return ociExecProcess{
		Terminal:     spec.TTY,
		User:         ociUser{UID: m.User.UID, GID: m.User.GID, AdditionalGids: m.User.Groups},
		Args:         spec.Cmd,
		Env:          env,
		Cwd:          dir,
		Capabilities: caps,
	}
}

// exitStatus turns the end of `runsc exec` into the process's exit code.
func (p *process) exitStatus(werr error) (int, error) {
	st := p.cmd.ProcessState
	if st == nil {
		return -1, fmt.Errorf("gvisor: runsc exec: %w: %w", werr, boxapi.ErrRuntime)
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, fmt.Errorf("gvisor: runsc exec killed on the host by %v: %w", ws.Signal(), boxapi.ErrRuntime)
	}
	code := ws.ExitStatus()
	if code == runscExitFailure && p.pid > 0 && !p.d.running(p.h) {
		return -1, fmt.Errorf("gvisor: sandbox %s died: %w", p.h, boxapi.ErrRuntime)
	}
	return code, nil
}

// pump copies r to w (nil: discard) until EOF, an error or the read
// deadline the waiter sets after the process exited. A pty master reports
// EIO once the terminal's last user is gone; that is EOF too. Errors of w
// stop the writes; the rest is drained and dropped so the process is never
// blocked on a full pipe.
func pump(r *os.File, w io.Writer) {
	buf := make([]byte, 64<<10)
	write := func(p []byte) {
		if w != nil {
			if _, err := w.Write(p); err != nil {
				w = nil
			}
		}
	}
	for {
		n, err := r.Read(buf)
		write(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// A slow w may have kept us past the deadline: what the
			// exited process wrote is still in the pipe. Take what is
			// there now without waiting (bounded: a background child may
			// keep writing).
			ptyutil.ReadAvailable(r, buf, func(p []byte) bool { write(p); return true })
		}
		if err != nil {
			return
		}
	}
}

// limitWriter keeps the first max bytes written to it and drops the rest.
// It is safe for concurrent use.
type limitWriter struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Wait waits for the process to exit and its output to be written.
func (p *process) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Signal sends sig to the process's group inside the sandbox. Signalling a
// process that has exited is not an error.
func (p *process) Signal(ctx context.Context, sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_, err := p.d.runsc(ctx, p.m, 30*time.Second, "kill", "--pgid", strconv.Itoa(p.pid), p.h, strconv.Itoa(int(sig)))
	if err != nil {
		select {
		case <-p.done:
			return nil // exited meanwhile
		default:
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("gvisor: signal: %w", err)
		}
		return fmt.Errorf("gvisor: signal: %w: %w", err, boxapi.ErrRuntime)
	}
	return nil
}

// Resize sets the terminal size of a TTY process.
func (p *process) Resize(ctx context.Context, size boxapi.TermSize) error {
	if p.pty == nil {
		return fmt.Errorf("gvisor: resize: not a TTY process: %w", boxapi.ErrInvalid)
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := ptyutil.SetSize(p.pty, size.Rows, size.Cols); err != nil {
		return fmt.Errorf("gvisor: resize: %w", err)
	}
	return nil
}
