package boxrun

import (
	"context"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// Attach runs an interactive program on a terminal in a running box: req.Cmd,
// or req.Shell (default "/bin/sh"), with TERM set (default xterm-256color),
// in req.Workdir or the box's workdir. Input comes from req.Stdin, output
// (stdout and stderr merged) goes to req.Stdout, and sizes from req.Resize
// are applied. It returns the program's exit code when the program exits;
// canceling ctx kills the program (the box keeps running) and returns
// ctx.Err() (with the killed program's status, where known). The session is not recorded as an exec. Errors:
// BOX_NOT_FOUND, BOX_NOT_RUNNING ("Box is not running"), RUNTIME_ERROR
// ("Failed to start exec: …").
func (m *Manager) Attach(ctx context.Context, box string, req AttachRequest) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.leave()
	b, done, err := m.agentHandle(ctx, box)
	if err != nil {
		return 0, err
	}
	defer done()
	m.beginBusy(b.ID)
	defer m.endBusy(b.ID)
	cmd := req.Cmd
	if len(cmd) == 0 {
		shell := req.Shell
		if shell == "" {
			shell = "/bin/sh"
		}
		cmd = []string{shell}
	}
	term := req.Term
	if term == "" {
		term = "xterm-256color"
	}
	size := req.Size
	if size.Rows == 0 {
		size.Rows = 24
	}
	if size.Cols == 0 {
		size.Cols = 80
	}
	dir := req.Workdir
	if dir == "" {
		dir = b.Workdir
	}
	proc, err := m.driver.Exec(m.ctx, b.Handle, sandbox.ProcessSpec{
		Cmd: cmd, Env: []string{"TERM=" + term}, Dir: dir, TTY: true, Size: size,
		Stdin: req.Stdin, Stdout: req.Stdout,
	})
	if err != nil {
		return 0, Errorf(CodeRuntimeError, "Failed to start exec: %w", err)
	}
	exited := make(chan procResult, 1)
	go func() {
		code, err := proc.Wait()
		exited <- procResult{code, err}
	}()
	for {
		select {
		case res := <-exited:
			if res.err != nil {
				return 0, nil // the status is unknown; the API reports 0
			}
			return res.code, nil
		case sz, ok := <-req.Resize:
			if !ok {
				req.Resize = nil
				continue
			}
			if err := proc.Resize(ctx, sz); err != nil {
				m.log.Debug("attach: resize", "box", b.ID, "err", err)
			}
		case <-ctx.Done():
			return killAndWait(proc, exited), ctx.Err()
		case <-m.ctx.Done():
			return killAndWait(proc, exited), ErrClosed
		}
	}
}

type procResult struct {
	code int
	err  error
}

// killAndWait kills an attached program and returns its exit status (0 when
// it cannot be known).
func killAndWait(proc sandbox.Process, exited <-chan procResult) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = proc.Signal(ctx, syscall.SIGKILL)
	res := <-exited
	if res.err != nil {
		return 0
	}
	return res.code
}
