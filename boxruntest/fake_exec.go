package boxruntest

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
	"syscall"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/internal/ptyutil"
	"github.com/boxrun/boxrun/sandbox"
)

// drainIdle is how long output streams may keep going after the process has
// exited before they are cut (see stream.finish): enough for a stream whose
// writers are all gone to reach EOF, short enough that a background child
// holding the stream open does not keep Wait waiting.
const drainIdle = 100 * time.Millisecond

// fakeProcess is a host process started by FakeDriver.Exec.
type fakeProcess struct {
	cmd     *exec.Cmd
	pgid    int
	tty     *os.File // pty master (pollable), nil without TTY
	stdin   *os.File // write end of the stdin pipe, nil without Stdin or with TTY
	streams []*stream

	done     chan struct{} // closed once exited, drained and cleaned up
	exitCode int
	err      error
}

// Exec starts spec as a host process of the box (see FakeDriver).
func (d *FakeDriver) Exec(ctx context.Context, handle string, spec sandbox.ProcessSpec) (sandbox.Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return nil, fmt.Errorf("fake: exec: empty command: %w", boxrun.ErrInvalid)
	}
	b := d.box(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := d.readState(handle)
	if err != nil {
		return nil, err
	}
	switch st {
	case sandbox.Missing:
		return nil, fmt.Errorf("fake: exec in %s: %w", handle, boxrun.ErrNotFound)
	case sandbox.Stopped:
		return nil, fmt.Errorf("fake: exec in %s: box is stopped: %w", handle, boxrun.ErrConflict)
	}
	var bs fakeSpec
	if js, err := os.ReadFile(filepath.Join(d.boxDir(handle), "spec.json")); err != nil {
		return nil, fmt.Errorf("fake: exec: %w", err)
	} else if err := json.Unmarshal(js, &bs); err != nil {
		return nil, fmt.Errorf("fake: exec: %w", err)
	}
	dir := spec.Dir
	if dir == "" {
		dir = bs.Workdir
	}
	rel, err := rootPath(dir)
	if err != nil {
		return nil, fmt.Errorf("fake: exec: working directory: %w", err)
	}
	cwd := filepath.Join(d.fsDir(handle), rel)
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return nil, fmt.Errorf("fake: exec: working directory %s: %w", dir, err)
	}
	env := mergeEnv(os.Environ(), bs.Env, spec.Env, []string{markerEnv + "=" + handle})
	p, err := startProcess(spec, cwd, env)
	if err != nil {
		return nil, fmt.Errorf("fake: exec %q: %w", spec.Cmd[0], err)
	}
	b.procs[p] = struct{}{}
	go func() {
		<-p.done
		b.mu.Lock()
		delete(b.procs, p)
		b.mu.Unlock()
	}()
	return p, nil
}

// mergeEnv returns host overridden by each of layers in turn, keeping the
// host's PATH.
func mergeEnv(host []string, layers ...[]string) []string {
	var order []string
	vals := map[string]string{}
	set := func(kv string, keepPath bool) {
		k, _, _ := strings.Cut(kv, "=")
		if keepPath && k == "PATH" {
			return
		}
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = kv
	}
	for _, kv := range host {
		set(kv, false)
	}
	for _, l := range layers {
		for _, kv := range l {
			set(kv, true)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, vals[k])
	}
	return env
}

// startProcess starts spec in cwd with env and the goroutines that pump its
// streams and wait for it.
func startProcess(spec sandbox.ProcessSpec, cwd string, env []string) (_ *fakeProcess, err error) {
	cmd := exec.Command(spec.Cmd[0], spec.Cmd[1:]...)
	cmd.Dir, cmd.Env = cwd, env
	p := &fakeProcess{cmd: cmd, done: make(chan struct{})}
	var childEnds []*os.File // closed in the parent once started
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
		if err != nil {
			p.closeFiles()
		}
	}()

	if spec.TTY {
		master, slave, err := ptyutil.Open(spec.Size.Rows, spec.Size.Cols)
		if err != nil {
			return nil, err
		}
		p.tty = master
		childEnds = append(childEnds, slave)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		p.streams = []*stream{{f: master, w: spec.Stdout, done: make(chan struct{})}}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if spec.Stdin != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			childEnds = append(childEnds, r)
			p.stdin = w
			cmd.Stdin = r
		}
		for _, out := range []struct {
			dst *io.Writer
			w   io.Writer
		}{{&cmd.Stdout, spec.Stdout}, {&cmd.Stderr, spec.Stderr}} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			childEnds = append(childEnds, w)
			*out.dst = w
			p.streams = append(p.streams, &stream{f: r, w: out.w, done: make(chan struct{})})
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.pgid = cmd.Process.Pid

	for _, s := range p.streams {
		go s.pump()
	}
	switch {
	case p.tty != nil:
		// A terminal cannot be half-closed: EOF (also at once, without
		// Stdin) is the EOF character.
		go func() { _ = ptyutil.CopyInput(p.tty, spec.Stdin) }()
	case spec.Stdin != nil:
		go feedStdin(p.stdin, spec.Stdin)
	}
	go p.wait()
	return p, nil
}

// feedStdin copies r to the stdin pipe of a process and closes it at EOF.
// It returns early when the process is gone (the file is closed).
func feedStdin(in *os.File, r io.Reader) {
	_, _ = io.Copy(in, r)
	in.Close()
}

// wait reaps the process, lets its output drain, and records the result.
func (p *fakeProcess) wait() {
	defer close(p.done)
	werr := p.cmd.Wait()
	var ws syscall.WaitStatus
	if st := p.cmd.ProcessState; st != nil {
		ws, _ = st.Sys().(syscall.WaitStatus)
	}
	switch {
	case p.cmd.ProcessState == nil:
		p.exitCode, p.err = -1, fmt.Errorf("fake: wait: %w", werr)
	case ws.Signaled():
		p.exitCode = 128 + int(ws.Signal())
	default:
		p.exitCode = ws.ExitStatus()
	}
	cut := time.Now().Add(drainIdle)
	for _, s := range p.streams {
		s.finish(cut)
	}
	p.closeFiles()
}

// closeFiles closes the parent's ends of the process's files.
func (p *fakeProcess) closeFiles() {
	for _, s := range p.streams {
		s.f.Close()
	}
	if p.tty != nil {
		p.tty.Close()
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
}

// Wait waits for the process to exit and its output to be written.
func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	return p.exitCode, p.err
}

// Signal sends sig to the process group. Signaling a finished process is
// not an error.
func (p *fakeProcess) Signal(ctx context.Context, sig syscall.Signal) error {
	err := syscall.Kill(-p.pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fake: signal %v: %w", sig, err)
	}
	return nil
}

// Resize sets the terminal size of a TTY process.
func (p *fakeProcess) Resize(ctx context.Context, size boxrun.TermSize) error {
	if p.tty == nil {
		return fmt.Errorf("fake: resize: process has no terminal: %w", boxrun.ErrInvalid)
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := ptyutil.SetSize(p.tty, size.Rows, size.Cols); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("fake: resize: %w", err)
	}
	return nil
}

// stream pumps one output file (pipe read end or pty master) to a writer.
type stream struct {
	f    *os.File  // pollable, so deadlines work
	w    io.Writer // nil discards
	done chan struct{}
}

// pump copies f to w until EOF, an error, or the deadline set by finish. On
// the deadline it reads whatever is still buffered without waiting, so no
// output written before the process exited is lost. A failing w is dropped;
// reading goes on so the process never blocks on a full pipe.
func (s *stream) pump() {
	defer close(s.done)
	buf := make([]byte, 32<<10)
	write := func(b []byte) {
		if s.w != nil {
			if _, err := s.w.Write(b); err != nil {
				s.w = nil
			}
		}
	}
	for {
		n, err := s.f.Read(buf)
		write(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil { // EOF, or EIO from a pty master whose slave is closed
			return
		}
	}
	// Cut by finish: take what is buffered, without blocking.
	ptyutil.ReadAvailable(s.f, buf, func(b []byte) bool { write(b); return true })
}

// finish is called once the process has exited: it gives the stream until
// cut to reach EOF, then cuts it (see pump) and waits for the pump.
func (s *stream) finish(cut time.Time) {
	timer := time.NewTimer(time.Until(cut))
	defer timer.Stop()
	select {
	case <-s.done:
		return
	case <-timer.C:
	}
	_ = s.f.SetReadDeadline(time.Now())
	<-s.done
}
