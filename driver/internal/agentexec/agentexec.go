// Package agentexec adapts an agentproto connection to the sandbox driver
// SPI: it starts an exec through a box's agent and wraps the agent's
// process as a sandbox.Process, and it runs copy in/out, watch and list,
// mapping the agent's answers to the boxapi error kinds (NewWatch, the
// watch adapter, serves the QEMU driver too). Drivers that reach their
// boxes' agents over different channels (gVisor over a per-box host Unix
// socket, Kubernetes over a pods/exec relay) share it, so an exec behaves
// the same on both.
//
// The driver keeps ownership of its connections: agentexec never dials,
// and it reports a connection that broke the protocol through the
// Broken hook (the driver then drops or redials it). Every function is
// safe for concurrent use as far as agentproto.Conn is.
package agentexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Agent is one agent connection as a driver sees it.
type Agent struct {
	// Name prefixes every error ("gvisor", "kubernetes").
	Name string
	// Conn is the connection; required.
	Conn *agentproto.Conn
	// Broken, when set, is called with an error wrapping
	// agentproto.ErrProtocol when Conn misbehaved during an exec's wait or
	// a copy; the driver drops the connection. It may be called more than
	// once for one connection.
	Broken func(err error)
	// Dead, when set, reports that the box itself died; Wait's error then
	// says so.
	Dead func() bool
}

// Request builds the agent request of spec, run as u in dir with the
// complete environment env (the driver merges image and spec env). Like
// runsc exec, a missing dir is an error, not a fallback to "/".
func Request(spec sandbox.ProcessSpec, env []string, dir string, u agentproto.User) *agentproto.Request {
	req := &agentproto.Request{
		Cmd:       spec.Cmd,
		Env:       env,
		Dir:       dir,
		StrictDir: true,
		TTY:       spec.TTY,
		User:      &u,
		// Host-connected output where the connection can (see
		// agentproto.Conn.SetOutDialer); relayed frames otherwise.
		HostOut: !spec.TTY,
	}
	if spec.TTY {
		req.Rows, req.Cols = spec.Size.Rows, spec.Size.Cols
	}
	return req
}

// Start starts req through the agent with spec's stdio (a TTY exec's
// output is all on stdout) and waits up to startTimeout for the agent to
// report it started. Errors: the agent refused the command (not found,
// bad dir, bad user) wraps boxapi.ErrInvalid; ctx ended wraps ctx.Err();
// anything else (the agent stalled or broke the protocol, then it may
// wrap agentproto.ErrProtocol) wraps boxapi.ErrRuntime and means the exec
// was not started, so a driver may fall back to another way.
func (a *Agent) Start(ctx context.Context, req *agentproto.Request, spec sandbox.ProcessSpec, startTimeout time.Duration) (*Process, error) {
	var stderr io.Writer = spec.Stderr
	if spec.TTY {
		stderr = nil
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	ap, err := a.Conn.Exec(sctx, req, spec.Stdin, spec.Stdout, stderr)
	if err != nil {
		var re *agentproto.RemoteError
		switch {
		case errors.As(err, &re):
			return nil, fmt.Errorf("%s: exec %q: %s: %w", a.Name, req.Cmd[0], re.Msg, boxapi.ErrInvalid)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%s: exec: %w", a.Name, ctx.Err())
		}
		return nil, fmt.Errorf("%s: exec: %w: %w", a.Name, err, boxapi.ErrRuntime)
	}
	return &Process{a: a, p: ap, tty: spec.TTY}, nil
}

// Process is an exec running through an agent; it implements
// sandbox.Process.
type Process struct {
	a   *Agent
	p   *agentproto.Process
	tty bool
}

// HostOut reports whether the exec's output comes over host-connected
// sockets rather than frames relayed by the agent.
func (p *Process) HostOut() bool { return p.p.HostOut() }

// Prepared reports whether the exec's output went to a pair prepared ahead
// of it (agentproto.Conn.PrepareOut).
func (p *Process) Prepared() bool { return p.p.Prepared() }

// Wait returns the exit code once the output is written. A broken agent
// stream is boxapi.ErrRuntime (and is reported to Broken).
func (p *Process) Wait() (int, error) {
	code, err := p.p.Wait()
	if err != nil {
		if errors.Is(err, agentproto.ErrProtocol) && p.a.Broken != nil {
			p.a.Broken(err)
		}
		if p.a.Dead != nil && p.a.Dead() {
			return -1, fmt.Errorf("%s: sandbox died: %w: %w", p.a.Name, err, boxapi.ErrRuntime)
		}
		return -1, fmt.Errorf("%s: %w: %w", p.a.Name, err, boxapi.ErrRuntime)
	}
	return code, nil
}

// Signal sends sig to the process group; for a TTY exec, KILL, TERM and
// HUP go to its whole session (a shell's background jobs included). A
// process that already exited is not an error.
func (p *Process) Signal(ctx context.Context, sig syscall.Signal) error {
	select {
	case <-p.p.Done():
		return nil
	default:
	}
	session := p.tty && (sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGHUP)
	if err := p.p.Signal(ctx, sig, session); err != nil {
		select {
		case <-p.p.Done():
			return nil
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: signal: %w", p.a.Name, ctx.Err())
		}
		if sig == syscall.SIGKILL {
			// The agent does not answer: closing the exec's stream
			// makes the agent kill the process when it reads again,
			// and ends Wait here.
			p.p.Close()
		}
		return fmt.Errorf("%s: signal: %w: %w", p.a.Name, err, boxapi.ErrRuntime)
	}
	return nil
}

// Resize sets the terminal size of a TTY exec.
func (p *Process) Resize(ctx context.Context, size boxapi.TermSize) error {
	if !p.tty {
		return fmt.Errorf("%s: resize: not a TTY process: %w", p.a.Name, boxapi.ErrInvalid)
	}
	select {
	case <-p.p.Done():
		return nil
	default:
	}
	if err := p.p.Resize(ctx, size.Rows, size.Cols); err != nil {
		return fmt.Errorf("%s: resize: %w", p.a.Name, err)
	}
	return nil
}

// CopyIn extracts the tar stream r into the absolute, clean path dst in
// the box (confined to dst by the agent).
func (a *Agent) CopyIn(ctx context.Context, dst string, r io.Reader) error {
	return a.opErr(ctx, "copy in", dst, a.Conn.CopyIn(ctx, dst, r))
}

// CopyOut writes a tar stream of the absolute, clean path src in the box
// to w. The stream comes from the box: w must treat it as hostile.
func (a *Agent) CopyOut(ctx context.Context, src string, w io.Writer) error {
	return a.opErr(ctx, "copy out", src, a.Conn.CopyOut(ctx, src, w))
}

// opErr maps the error of op (a copy, a watch, a list) on the path p: the
// agent's answers to ErrNotFound, ErrInvalid or ErrRuntime, a broken
// connection to ErrRuntime (reported to Broken).
func (a *Agent) opErr(ctx context.Context, op, p string, err error) error {
	var re *agentproto.RemoteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && re.Kind == agentproto.KindNotFound:
		return fmt.Errorf("%s: %s %s: %s: %w", a.Name, op, p, re.Msg, boxapi.ErrNotFound)
	case errors.As(err, &re) && re.Kind == agentproto.KindInvalid:
		return fmt.Errorf("%s: %s %s: %s: %w", a.Name, op, p, re.Msg, boxapi.ErrInvalid)
	case errors.As(err, &re):
		return fmt.Errorf("%s: %s %s: %s: %w", a.Name, op, p, re.Msg, boxapi.ErrRuntime)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %s %s: %w", a.Name, op, p, ctx.Err())
	case errors.Is(err, agentproto.ErrProtocol) && a.Broken != nil:
		a.Broken(err)
	}
	return fmt.Errorf("%s: %s %s: %w: %w", a.Name, op, p, err, boxapi.ErrRuntime)
}

var _ sandbox.Process = (*Process)(nil)
