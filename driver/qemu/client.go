package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

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

// agentConn is a yamux session with one box's agent. Every operation is
// one stream; the session is safe for concurrent use.
type agentConn struct {
	conn net.Conn
	sess *yamux.Session
}

// handshakeTimeout bounds one connection attempt's wait for the agent's
// Ready; dialAgent then dials again (see agentproto.Hello for why).
const handshakeTimeout = 10 * time.Second

// dialAgent connects to the agent of the box in dir and runs the handshake,
// dialing again until ctx ends when the agent does not answer.
func dialAgent(ctx context.Context, dir string) (*agentConn, error) {
	for {
		c, err := dialAgentOnce(ctx, dir)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dialAgentOnce(ctx context.Context, dir string) (*agentConn, error) {
	conn, err := dialUnix(ctx, dir, agentSock)
	if err != nil {
		return nil, err
	}
	var rnd [agentproto.NonceLen / 2]byte
	rand.Read(rnd[:])
	nonce := hex.EncodeToString(rnd[:])
	ready := agentproto.Ready(nonce)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(hctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(agentproto.Hello(nonce)); err != nil {
		conn.Close()
		return nil, err
	}
	// Discard everything before Ready: leftovers of an earlier session.
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, ready); i >= 0 {
			buf = buf[i+len(ready):]
			break
		}
		if len(buf) > len(ready) {
			buf = buf[len(buf)-len(ready):]
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("agent handshake: %w", err)
		}
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("agent handshake: %w", hctx.Err())
	}
	conn.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: conn, prefix: buf}
	sess, err := yamux.Client(pc, agentproto.Config())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &agentConn{conn: conn, sess: sess}, nil
}

// prefixConn returns prefix before reading from Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Close ends the session (the agent then kills the execs it started).
func (c *agentConn) Close() error {
	c.sess.Close()
	return c.conn.Close()
}

// dead reports whether the session has ended.
func (c *agentConn) dead() bool { return c.sess.IsClosed() }

// open opens a stream and sends req. The stream is closed when ctx ends
// before release is called.
func (c *agentConn) open(ctx context.Context, req *agentproto.Request) (st *yamux.Stream, release func() bool, err error) {
	st, err = c.sess.OpenStream()
	if err != nil {
		return nil, nil, fmt.Errorf("agent session: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.Close(); st.SetDeadline(time.Now()) })
	if err := agentproto.WriteJSON(st, agentproto.FrameRequest, req); err != nil {
		stop()
		st.Close()
		return nil, nil, ctxErr(ctx, err)
	}
	return st, stop, nil
}

// call runs a request whose answer is a single Result.
func (c *agentConn) call(ctx context.Context, req *agentproto.Request) (agentproto.Result, error) {
	st, release, err := c.open(ctx, req)
	if err != nil {
		return agentproto.Result{}, err
	}
	defer st.Close()
	defer release()
	var res agentproto.Result
	if err := agentproto.ReadJSON(st, agentproto.FrameResult, &res); err != nil {
		return res, ctxErr(ctx, fmt.Errorf("agent %s: %w", req.Op, err))
	}
	return res, resultErr(req.Op, res)
}

// resultErr maps an agent error to the boxrun error kinds.
func resultErr(op string, res agentproto.Result) error {
	if res.Error == "" {
		return nil
	}
	switch res.Kind {
	case agentproto.KindNotFound:
		return fmt.Errorf("%s: %s: %w", op, res.Error, boxapi.ErrNotFound)
	case agentproto.KindInvalid:
		return fmt.Errorf("%s: %s: %w", op, res.Error, boxapi.ErrInvalid)
	}
	return fmt.Errorf("%s: %s", op, res.Error)
}

// ctxErr prefers ctx's error, mapped to the boxrun kinds, over err.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", boxapi.ErrTimeout, ctx.Err())
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", boxapi.ErrCanceled, ctx.Err())
	}
	return err
}
