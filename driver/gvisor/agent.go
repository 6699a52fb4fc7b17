package gvisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
	"golang.org/x/sys/unix"
)

// The agent: the box's init (package boxinit) serves package agentproto on
// a Unix socket in <box>/agent, which the driver bind-mounts at
// boxinit.AgentDir and runsc (--host-uds=create) lets the box create. The
// driver keeps one connection per box; every exec, signal, resize and copy
// is a stream on it. Without an answering agent (a box made before the
// agent existed, or box root removed or broke it) the driver falls back to
// `runsc exec`, and says so in DescribeBox.

const (
	agentDirName  = "agent"
	agentSockName = "agent.sock"
	// agentHandshake bounds the wait for an agent's answer on a fresh
	// connection; a box whose agent stays silent uses runsc exec.
	agentHandshake = 2 * time.Second
	// agentStartWait bounds how long Create and Start wait for a new
	// box's agent to listen.
	agentStartWait = 3 * time.Second
	// agentStartTimeout bounds the wait for an agent to report an exec
	// started; a stalled agent is dropped and runsc exec takes the exec.
	agentStartTimeout = 10 * time.Second
)

// Agent states reported by DescribeBox.
const (
	AgentConnected = "connected" // execs go through the agent
	AgentFallback  = "fallback"  // the agent did not answer: execs use runsc exec
)

func (d *Driver) agentDir(h string) string { return filepath.Join(d.boxDir(h), agentDirName) }

// agentBox is the driver's agent state of one box.
type agentBox struct {
	conn *agentproto.Conn // nil when not connected
	err  error            // the last connection failure
}

// dialAgent connects to the agent of h and runs the handshake.
func (d *Driver) dialAgent(ctx context.Context, h string) (*agentproto.Conn, error) {
	c, err := dialUnix(ctx, d.agentDir(h), agentSockName)
	if err != nil {
		return nil, err
	}
	return agentproto.Handshake(ctx, c, agentHandshake)
}

// agent returns the connection to the agent of h, connecting when there
// is none (or the last one died). An error means: use runsc exec.
func (d *Driver) agent(ctx context.Context, h string) (*agentproto.Conn, error) {
	d.mu.Lock()
	ab := d.agents[h]
	if ab == nil {
		ab = &agentBox{}
		d.agents[h] = ab
	}
	if ab.conn != nil && !ab.conn.Closed() {
		c := ab.conn
		d.mu.Unlock()
		return c, nil
	}
	d.mu.Unlock()
	// Connect outside d.mu; two racing connects keep the first.
	c, err := d.dialAgent(ctx, h)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.agents[h] != ab {
		// The box was torn down meanwhile.
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("gvisor: agent of %s: box stopped: %w", h, boxapi.ErrConflict)
	}
	if err != nil {
		ab.err = err
		if ab.conn == nil || ab.conn.Closed() {
			ab.conn = nil
		}
		return nil, err
	}
	if ab.conn != nil && !ab.conn.Closed() {
		c.Close()
		return ab.conn, nil
	}
	ab.conn, ab.err = c, nil
	return c, nil
}

// dropAgent forgets the connection c of h (closing it; the agent then
// kills the execs it started on it) after it misbehaved.
func (d *Driver) dropAgent(h string, c *agentproto.Conn, why error) {
	d.mu.Lock()
	if ab := d.agents[h]; ab != nil && ab.conn == c {
		ab.conn, ab.err = nil, why
	}
	d.mu.Unlock()
	c.Close()
	d.log.Warn("gvisor: agent connection dropped", "handle", h, "err", why)
}

// closeAgent closes and forgets the agent connection of h (teardown).
func (d *Driver) closeAgent(h string) {
	d.mu.Lock()
	ab := d.agents[h]
	delete(d.agents, h)
	d.mu.Unlock()
	if ab != nil && ab.conn != nil {
		ab.conn.Close()
	}
}

// waitAgent waits up to agentStartWait for the agent of a just started box
// and connects to it; failing that, the box's execs use runsc exec.
func (d *Driver) waitAgent(ctx context.Context, h string) {
	deadline := time.Now().Add(agentStartWait)
	for {
		if _, err := d.agent(ctx, h); err == nil {
			return
		} else if time.Now().After(deadline) || ctx.Err() != nil || !d.running(h) {
			d.log.Warn("gvisor: agent did not start; execs use runsc exec", "handle", h, "err", err)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// DescribeBox reports the box's agent: "agent" is AgentConnected or
// AgentFallback (with "agent_error").
func (d *Driver) DescribeBox(ctx context.Context, handle string) map[string]string {
	if !d.exists(handle) || !d.running(handle) {
		return nil
	}
	if _, err := d.agent(ctx, handle); err != nil {
		return map[string]string{"agent": AgentFallback, "agent_error": err.Error()}
	}
	return map[string]string{"agent": AgentConnected}
}

// agentExec runs spec through the agent c. fallback reports that the
// agent could not take the exec (nothing was started) and runsc exec
// should.
func (d *Driver) agentExec(ctx context.Context, h string, c *agentproto.Conn, m *boxMeta, spec sandbox.ProcessSpec) (_ sandbox.Process, fallback bool, _ error) {
	dir := spec.Dir
	if dir == "" {
		dir = m.Workdir
	}
	op := execProcess(m, spec, dir)
	req := &agentproto.Request{
		Cmd:       spec.Cmd,
		Env:       op.Env,
		Dir:       dir,
		StrictDir: true, // as runsc exec
		TTY:       spec.TTY,
		User:      &agentproto.User{UID: m.User.UID, GID: m.User.GID, Groups: m.User.Groups},
	}
	if spec.TTY {
		req.Rows, req.Cols = spec.Size.Rows, spec.Size.Cols
	}
	var stderr io.Writer = spec.Stderr
	if spec.TTY {
		stderr = nil
	}
	sctx, cancel := context.WithTimeout(ctx, agentStartTimeout)
	defer cancel()
	ap, err := c.Exec(sctx, req, spec.Stdin, spec.Stdout, stderr)
	if err != nil {
		var re *agentproto.RemoteError
		switch {
		case errors.As(err, &re):
			return nil, false, fmt.Errorf("gvisor: exec %q: %s: %w", spec.Cmd[0], re.Msg, boxapi.ErrInvalid)
		case ctx.Err() != nil:
			return nil, false, fmt.Errorf("gvisor: exec: %w", ctx.Err())
		}
		// Slow (a loaded box) or stalled? Only a connection that no
		// longer answers a ping is dropped: dropping it kills every exec
		// it carries. Either way this exec goes to runsc exec; the agent
		// kills the process it may still start for the abandoned stream.
		pctx, pcancel := context.WithTimeout(ctx, agentHandshake)
		_, perr := c.Call(pctx, &agentproto.Request{Op: agentproto.OpPing})
		pcancel()
		if perr == nil && !errors.Is(err, agentproto.ErrProtocol) {
			d.log.Warn("gvisor: agent slow to start an exec; using runsc exec", "handle", h, "err", err)
			return nil, true, err
		}
		d.dropAgent(h, c, err)
		return nil, true, err
	}
	return &agentProcess{d: d, h: h, c: c, p: ap, tty: spec.TTY}, false, nil
}

// agentProcess is an exec running through the agent.
type agentProcess struct {
	d   *Driver
	h   string
	c   *agentproto.Conn
	p   *agentproto.Process
	tty bool
}

// Wait returns the exit code once the output is written. A broken agent
// stream is ErrRuntime (and that connection is dropped).
func (p *agentProcess) Wait() (int, error) {
	code, err := p.p.Wait()
	if err != nil {
		if errors.Is(err, agentproto.ErrProtocol) {
			p.d.dropAgent(p.h, p.c, err)
		}
		if !p.d.running(p.h) {
			return -1, fmt.Errorf("gvisor: sandbox %s died: %w: %w", p.h, err, boxapi.ErrRuntime)
		}
		return -1, fmt.Errorf("gvisor: %w: %w", err, boxapi.ErrRuntime)
	}
	return code, nil
}

// Signal sends sig to the process group; for a TTY exec, KILL, TERM and
// HUP go to its whole session (a shell's background jobs included).
func (p *agentProcess) Signal(ctx context.Context, sig syscall.Signal) error {
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
			return fmt.Errorf("gvisor: signal: %w", ctx.Err())
		}
		if sig == syscall.SIGKILL {
			// The agent is gone: its session end kills the exec, but
			// make sure through runsc.
			p.p.Close()
		}
		return fmt.Errorf("gvisor: signal: %w: %w", err, boxapi.ErrRuntime)
	}
	return nil
}

// Resize sets the terminal size of a TTY exec.
func (p *agentProcess) Resize(ctx context.Context, size boxapi.TermSize) error {
	if !p.tty {
		return fmt.Errorf("gvisor: resize: not a TTY process: %w", boxapi.ErrInvalid)
	}
	select {
	case <-p.p.Done():
		return nil
	default:
	}
	if err := p.p.Resize(ctx, size.Rows, size.Cols); err != nil {
		return fmt.Errorf("gvisor: resize: %w", err)
	}
	return nil
}

// dialUnix connects to the socket name in dir. Paths longer than a
// sockaddr_un allows are reached through /proc/self/fd/<dirfd>/name.
func dialUnix(ctx context.Context, dir, name string) (net.Conn, error) {
	var dl net.Dialer
	p := filepath.Join(dir, name)
	if len(p) < 100 {
		return dl.DialContext(ctx, "unix", p)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return dl.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd)+"/"+name)
}

var _ sandbox.BoxDescriber = (*Driver)(nil)
