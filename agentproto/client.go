package agentproto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// RemoteError is an error the agent reported in a Result.
type RemoteError struct {
	Op   string // the request's Op
	Kind string // KindNotFound, KindInvalid, KindOther (or anything the agent sent)
	Msg  string
}

func (e *RemoteError) Error() string { return e.Op + ": " + e.Msg }

// Conn is the host side of one connection to an agent: a yamux session
// over which every operation is one stream. It is safe for concurrent use;
// Close ends every operation (and the agent then kills the execs this
// connection started).
type Conn struct {
	conn    net.Conn
	sess    *yamux.Session
	dialOut OutDialer // nil: output is relayed in frames (see SetOutDialer)
	pairs   outPairs  // prepared output pairs (outpair.go)
}

// Handshake runs the connection handshake (see Hello) on conn and starts
// the yamux session. It closes conn and returns an error wrapping
// ErrProtocol when no Ready comes before timeout or ctx ends; everything
// before Ready is discarded (bounded: a stream that never answers is cut
// off at the timeout).
func Handshake(ctx context.Context, conn net.Conn, timeout time.Duration) (*Conn, error) {
	var rnd [NonceLen / 2]byte
	_, _ = rand.Read(rnd[:])
	nonce := hex.EncodeToString(rnd[:])
	ready := Ready(nonce)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(hctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(Hello(nonce)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent handshake: %w", err)
	}
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
			if hctx.Err() != nil {
				return nil, fmt.Errorf("agent handshake: no answer: %w: %w", hctx.Err(), ErrProtocol)
			}
			return nil, fmt.Errorf("agent handshake: %w", err)
		}
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("agent handshake: %w: %w", hctx.Err(), ErrProtocol)
	}
	_ = conn.SetReadDeadline(time.Time{})
	sess, err := yamux.Client(Coalesce(&prefixConn{Conn: conn, prefix: buf}), Config())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent session: %w", err)
	}
	return &Conn{conn: conn, sess: sess}, nil
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

// Close ends the session. It is idempotent.
func (c *Conn) Close() error {
	c.closePairs()
	c.sess.Close()
	return c.conn.Close()
}

// Closed reports whether the session has ended.
func (c *Conn) Closed() bool { return c.sess.IsClosed() }

// Open opens a stream and sends req. The stream is closed when ctx ends
// before release is called.
func (c *Conn) Open(ctx context.Context, req *Request) (*yamux.Stream, func() bool, error) {
	// st is not a named result: the AfterFunc below may run while a
	// failing return assigns the results.
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, nil, fmt.Errorf("agent session: %w", err)
	}
	// The callback has its own copy: the error return below sets st to
	// nil while a callback that already began may still run.
	s := st
	stop := context.AfterFunc(ctx, func() { s.Close(); _ = s.SetDeadline(time.Now()) })
	if err := WriteJSON(st, FrameRequest, req); err != nil {
		stop()
		st.Close()
		return nil, nil, ctxErr(ctx, err)
	}
	return st, stop, nil
}

// readResult reads the Result frame of op from st.
func readResult(st io.Reader, op string) (Result, error) {
	var res Result
	typ, payload, err := ReadFrame(st)
	if err != nil {
		return res, fmt.Errorf("agent %s: %w", op, err)
	}
	if typ != FrameResult {
		return res, fmt.Errorf("agent %s: frame type %d instead of a result: %w", op, typ, ErrProtocol)
	}
	if err := json.Unmarshal(payload, &res); err != nil {
		return res, fmt.Errorf("agent %s: bad result: %v: %w", op, err, ErrProtocol)
	}
	if res.Error != "" {
		return res, &RemoteError{Op: op, Kind: res.Kind, Msg: res.Error}
	}
	return res, nil
}

// Call runs a request whose answer is a single Result. An error the agent
// reports is a *RemoteError.
func (c *Conn) Call(ctx context.Context, req *Request) (Result, error) {
	st, release, err := c.Open(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	defer release()
	res, err := readResult(st, req.Op)
	if err != nil {
		return res, ctxErr(ctx, err)
	}
	return res, nil
}

// ctxErr prefers ctx's error over err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// NewExecID returns a random exec ID.
func NewExecID() string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

// Process is an exec running through a Conn.
type Process struct {
	conn *Conn
	id   string
	pid  int
	st   *yamux.Stream

	out      outWriters
	drain    *outDrain // host-connected output; nil when relayed in frames
	prepared bool      // the output went to a prepared pair (PrepareOut)

	done chan struct{} // closed when the output is written and the exit known
	code int
	err  error
}

// Exec starts req (Op exec; ID set by NewExecID when empty) and returns
// once the agent reports the process running. stdin (nil: none) is sent
// until its EOF; stdout and stderr (nil: discarded) receive the output.
// ctx bounds the start only. A non-TTY req with HostOut asks for
// host-connected output when c has an OutDialer (SetOutDialer); Exec
// clears HostOut otherwise.
func (c *Conn) Exec(ctx context.Context, req *Request, stdin io.Reader, stdout, stderr io.Writer) (*Process, error) {
	req.Op = OpExec
	if req.ID == "" {
		req.ID = NewExecID()
	}
	_, validID := OutSocketName(req.ID)
	req.HostOut = req.HostOut && c.dialOut != nil && !req.TTY && validID
	var pair *readyPair
	if req.HostOut {
		if pair = c.takePair(); pair != nil {
			req.OutPair = pair.token
			defer func() {
				if pair != nil { // not used: the agent no longer holds it
					closeAll(pair.conns)
				}
			}()
		}
	}
	st, release, err := c.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := readResult(st, OpExec)
	var outs []net.Conn
	if err == nil && res.OutPair {
		if pair == nil || res.HostOut {
			err = fmt.Errorf("agent exec %s: output pair not offered: %w", req.ID, ErrProtocol)
		} else {
			outs, pair = pair.conns, nil
		}
	} else if err == nil && res.HostOut {
		if !req.HostOut {
			err = fmt.Errorf("agent exec %s: output socket not asked for: %w", req.ID, ErrProtocol)
		} else if outs, err = c.connectOut(ctx, req.ID); err == nil {
			res, err = readResult(st, OpExec)
			if err == nil && (res.HostOut || res.OutPair) {
				err = fmt.Errorf("agent exec %s: second output socket answer: %w", req.ID, ErrProtocol)
			}
		}
	}
	if !release() && err == nil {
		// ctx ended just as the start result arrived: the stream is being
		// closed under us (the agent kills an exec whose stream closes), so
		// the exec did not start for the caller.
		err = fmt.Errorf("agent exec start: %w", context.Cause(ctx))
	}
	if err != nil {
		closeAll(outs)
		st.Close()
		return nil, ctxErr(ctx, err)
	}
	p := &Process{conn: c, id: req.ID, pid: res.PID, st: st, done: make(chan struct{}), prepared: res.OutPair}
	p.out.stdout, p.out.stderr = stdout, stderr
	if outs != nil {
		p.drain = &outDrain{conns: outs}
		p.drain.start(&p.out)
	}
	go p.pumpStdin(stdin)
	go p.readOutput()
	if req.HostOut {
		// The next exec's pair: after one was used, or when the last
		// preparation failed (a no-op while one is ready or under way).
		c.PrepareOut()
	}
	return p, nil
}

// HostOut reports whether the exec's output comes over host-connected
// sockets rather than relayed frames.
func (p *Process) HostOut() bool { return p.drain != nil }

// Prepared reports whether the exec's output went to a pair prepared
// ahead of it (see PrepareOut).
func (p *Process) Prepared() bool { return p.prepared }

// ID returns the exec ID; PID the process's PID inside the box.
func (p *Process) ID() string { return p.id }

// PID returns the process's PID inside the box, as the agent reported it.
func (p *Process) PID() int { return p.pid }

// Done is closed once Wait would return.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) pumpStdin(r io.Reader) {
	if r != nil {
		if _, err := io.Copy(DataWriter{W: p.st, Typ: FrameData}, r); err != nil {
			return
		}
	}
	_ = WriteFrame(p.st, FrameEOF, nil)
}

func (p *Process) readOutput() {
	defer close(p.done)
	defer p.st.Close()
	if p.drain != nil {
		// Exit is delivered only after the sockets drained.
		defer p.drain.finish()
	}
	// Writers must not retain what they are given (io.Writer), so one
	// buffer serves every frame.
	var buf []byte
	for {
		typ, payload, err := ReadFrameInto(p.st, buf)
		if err != nil {
			p.code, p.err = -1, fmt.Errorf("agent exec %s: lost the agent: %w", p.id, err)
			return
		}
		if cap(payload) > cap(buf) {
			buf = payload[:0]
		}
		switch typ {
		case FrameStdout:
			p.out.write(&p.out.stdout, payload)
		case FrameStderr:
			p.out.write(&p.out.stderr, payload)
		case FrameExit:
			var ex Exit
			if err := json.Unmarshal(payload, &ex); err != nil {
				p.code, p.err = -1, fmt.Errorf("agent exec %s: bad exit frame: %v: %w", p.id, err, ErrProtocol)
				return
			}
			p.code = ex.Code
			if ex.Error != "" {
				p.err = fmt.Errorf("agent exec %s: %s", p.id, ex.Error)
			}
			return
		default:
			p.code, p.err = -1, fmt.Errorf("agent exec %s: unexpected frame type %d: %w", p.id, typ, ErrProtocol)
			return
		}
	}
}

// Wait returns the exit code (128+n when killed by signal n) once the
// output is written.
func (p *Process) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Signal sends sig to the process group of the exec, or with session to
// every process of its session. Signalling an exec that has ended is not
// an error.
func (p *Process) Signal(ctx context.Context, sig syscall.Signal, session bool) error {
	_, err := p.conn.Call(ctx, &Request{Op: OpSignal, ID: p.id, Signal: int(sig), Session: session})
	var re *RemoteError
	if errors.As(err, &re) && re.Kind == KindNotFound {
		return nil // already gone
	}
	return err
}

// Resize sets the terminal size of a TTY exec.
func (p *Process) Resize(ctx context.Context, rows, cols uint16) error {
	_, err := p.conn.Call(ctx, &Request{Op: OpResize, ID: p.id, Rows: rows, Cols: cols})
	return err
}

// Close abandons the exec: its stream is closed, so the agent kills it
// (and Wait returns after the output drained).
func (p *Process) Close() error { return p.st.Close() }

// CopyIn sends the tar stream r to be extracted into dst inside the box.
func (c *Conn) CopyIn(ctx context.Context, dst string, r io.Reader) error {
	st, release, err := c.Open(ctx, &Request{Op: OpCopyIn, Path: dst})
	if err != nil {
		return err
	}
	defer release()
	defer st.Close()
	sent := make(chan error, 1)
	go func() {
		var err error
		if r != nil {
			_, err = io.Copy(DataWriter{W: st, Typ: FrameData}, r)
		}
		if err == nil {
			err = WriteFrame(st, FrameEOF, nil)
		}
		sent <- err
	}()
	if _, err := readResult(st, OpCopyIn); err != nil {
		var re *RemoteError
		if !errors.As(err, &re) {
			select {
			case serr := <-sent:
				if serr != nil {
					return ctxErr(ctx, fmt.Errorf("copy in: %w", serr))
				}
			default:
			}
		}
		return ctxErr(ctx, err)
	}
	if err := <-sent; err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	return nil
}

// CopyOut writes the tar stream of src inside the box to w. A data stream
// that does not end in FrameEOF and a Result is an error; what was written
// to w before is the caller's to discard.
func (c *Conn) CopyOut(ctx context.Context, src string, w io.Writer) error {
	st, release, err := c.Open(ctx, &Request{Op: OpCopyOut, Path: src})
	if err != nil {
		return err
	}
	defer release()
	defer st.Close()
	if _, err := io.Copy(w, &DataReader{R: st}); err != nil {
		return ctxErr(ctx, fmt.Errorf("copy out: %w", err))
	}
	if _, err := readResult(st, OpCopyOut); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}
