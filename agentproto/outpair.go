package agentproto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Prepared output pairs (OpPrepareOut, agent version 6). Host-connected
// output (see hostout.go) costs an exec a round trip and two connects into
// the box before its process starts: inside gVisor 3–6 ms of a ~16 ms
// exec. A Conn that prepares pairs does that work ahead of time, off the
// exec's path: it asks the agent to listen on a fresh output socket (named
// by a random token), connects and tags its stdout and stderr there, and
// the agent keeps the two accepted connections for this connection's
// session only. The next exec names the token (Request.OutPair); the agent
// starts the process on that pair at once and says so (Result.OutPair);
// the host prepares the next pair in the background. A pair the agent no
// longer holds (dropped for a checkpoint, an agent restart) is refused
// silently: the exec falls back to the per-exec socket or to relayed
// frames, and the host closes its side. At most one pair is ready per
// Conn; the agent holds at most two per session and closes them when the
// session ends.

// prepareTimeout bounds one background preparation.
const prepareTimeout = 10 * time.Second

// outPairs is the host side's prepared pair of a Conn.
type outPairs struct {
	mu        sync.Mutex
	ready     *readyPair
	preparing bool
	off       bool // the agent cannot prepare pairs (older, or refused)
	closed    bool // the Conn closed
}

// readyPair is a prepared pair: its token and the stdout and stderr
// connections.
type readyPair struct {
	token string
	conns []net.Conn
}

// PrepareOut starts preparing an output pair in the background, so that
// the next exec with HostOut starts without connecting its output (see
// above). It does nothing without an OutDialer, while a pair is ready or
// being prepared, or once the agent refused. Every exec started with
// HostOut calls it, so the next pair is prepared after one was used or a
// preparation failed. Safe for concurrent use.
func (c *Conn) PrepareOut() {
	if c.dialOut == nil {
		return
	}
	c.pairs.mu.Lock()
	if c.pairs.ready != nil || c.pairs.preparing || c.pairs.off || c.pairs.closed {
		c.pairs.mu.Unlock()
		return
	}
	c.pairs.preparing = true
	c.pairs.mu.Unlock()
	go c.prepareOut()
}

func (c *Conn) prepareOut() {
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	token := NewExecID()
	conns, err := c.prepareOutPair(ctx, token)
	c.pairs.mu.Lock()
	defer c.pairs.mu.Unlock()
	c.pairs.preparing = false
	var re *RemoteError
	if errors.As(err, &re) && re.Kind == KindInvalid || errors.Is(err, ErrProtocol) {
		c.pairs.off = true // refused (an older agent, a held one): exec as before
	}
	if err != nil {
		return
	}
	if c.pairs.closed {
		closeAll(conns)
		return
	}
	c.pairs.ready = &readyPair{token: token, conns: conns}
}

// prepareOutPair runs OpPrepareOut for token and returns the connected
// pair.
func (c *Conn) prepareOutPair(ctx context.Context, token string) ([]net.Conn, error) {
	st, release, err := c.Open(ctx, &Request{Op: OpPrepareOut, ID: token})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	defer release()
	res, err := readResult(st, OpPrepareOut)
	if err != nil {
		return nil, err
	}
	if !res.HostOut {
		return nil, fmt.Errorf("agent prepareout: no output socket offered: %w", ErrProtocol)
	}
	conns, err := c.connectOut(ctx, token)
	if err != nil {
		return nil, err
	}
	res, err = readResult(st, OpPrepareOut)
	if err == nil && res.HostOut {
		err = fmt.Errorf("agent prepareout: second output socket answer: %w", ErrProtocol)
	}
	if err != nil {
		closeAll(conns)
		return nil, ctxErr(ctx, err)
	}
	return conns, nil
}

// takePair removes and returns the ready pair, if any. A pair whose
// connections are no longer quiet (the agent closed them: box root beat
// the host to the socket when it was prepared, or the agent restarted) is
// closed instead.
func (c *Conn) takePair() *readyPair {
	c.pairs.mu.Lock()
	p := c.pairs.ready
	c.pairs.ready = nil
	c.pairs.mu.Unlock()
	if p == nil {
		return nil
	}
	for _, pc := range p.conns {
		if !quiet(pc) {
			closeAll(p.conns)
			return nil
		}
	}
	return p
}

// closePairs closes the ready pair and keeps new ones from being kept
// (Close).
func (c *Conn) closePairs() {
	c.pairs.mu.Lock()
	p := c.pairs.ready
	c.pairs.ready, c.pairs.closed = nil, true
	c.pairs.mu.Unlock()
	if p != nil {
		closeAll(p.conns)
	}
}

// ReadyPairToken returns the token of the ready pair ("" for none), for
// tests that act as another connection.
func (c *Conn) ReadyPairToken() string {
	c.pairs.mu.Lock()
	defer c.pairs.mu.Unlock()
	if c.pairs.ready == nil {
		return ""
	}
	return c.pairs.ready.token
}
