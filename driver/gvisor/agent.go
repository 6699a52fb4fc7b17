package gvisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/driver/internal/unixsock"
	"github.com/boxrun/boxrun/sandbox"
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
	c, err := unixsock.Dial(ctx, d.agentDir(h), agentSockName)
	if err != nil {
		return nil, err
	}
	ac, err := agentproto.Handshake(ctx, c, agentHandshake)
	if err != nil {
		return nil, err
	}
	dir := d.agentDir(h)
	ac.SetOutDialer(func(ctx context.Context, name string) (net.Conn, error) {
		return unixsock.DialNoFollow(ctx, dir, name)
	})
	return ac, nil
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
	c.PrepareOut() // the first exec's output pair (agentproto.OpPrepareOut)
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

// agentOf is the shared exec/copy adapter over the connection c of h:
// a connection that breaks the protocol is dropped.
func (d *Driver) agentOf(h string, c *agentproto.Conn) *agentexec.Agent {
	return &agentexec.Agent{
		Name:   "gvisor",
		Conn:   c,
		Broken: func(err error) { d.dropAgent(h, c, err) },
		Dead:   func() bool { return !d.running(h) },
	}
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
	req := agentexec.Request(spec, op.Env, dir, agentproto.User{UID: m.User.UID, GID: m.User.GID, Groups: m.User.Groups})
	if d.relayOutput.Load() {
		req.HostOut = false
	}
	p, err := d.agentOf(h, c).Start(ctx, req, spec, agentStartTimeout)
	if err == nil {
		return p, false, nil
	}
	if errors.Is(err, boxapi.ErrInvalid) || ctx.Err() != nil {
		return nil, false, err
	}
	// Slow (a loaded box) or stalled? Only a connection that no longer
	// answers a ping is dropped: dropping it kills every exec it
	// carries. Either way this exec goes to runsc exec; the agent kills
	// the process it may still start for the abandoned stream.
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

var _ sandbox.BoxDescriber = (*Driver)(nil)
