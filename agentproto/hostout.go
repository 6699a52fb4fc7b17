package agentproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Host-connected output (Request.HostOut, agent version 5). Relaying an
// exec's output through the agent costs a pipe inside the box, the agent's
// reads and the frames on the shared connection; inside gVisor that path
// tops out near half of what `runsc exec` reaches, whose process writes
// straight into a host pipe (see BENCHMARKS.md). With HostOut the agent
// instead listens on a Unix socket named by OutSocketName in a directory
// only the box's host side can reach (gVisor: the box's agent directory,
// created through runsc --host-uds=create), answers a first Result with
// HostOut set, and the host connects twice, writing OutTagStdout on one
// connection and OutTagStderr on the other. The agent accepts both, removes
// the socket, and starts the process with the two accepted connections as
// its fd 1 and 2: output bytes go from the process to the host without
// crossing the agent. Then come the Result with PID, stdin frames, and the
// Exit frame as always; the host delivers Exit only after the sockets
// drained (EOF, or idle for DrainIdle after the exit, at most DrainMax: a
// background child that keeps them open must not hold the exec open).
//
// An agent that cannot (the QEMU agent, an older gVisor agent, one whose
// socket failed) ignores HostOut and relays frames as before; the host
// takes whichever it gets. Everything that arrives on the sockets is
// hostile like any frame: it is only ever passed to the exec's writers in
// bounded chunks.

// Tags the host writes first on each output connection.
const (
	OutTagStdout byte = '1'
	OutTagStderr byte = '2'
)

// Drain bounds for output after the process exited (see HostOut): the
// streams are read until idle for DrainIdle, and never longer than
// DrainMax after the exit.
const (
	DrainIdle = 50 * time.Millisecond
	DrainMax  = 2 * time.Second
)

// maxExecIDLen bounds an exec ID that names a socket.
const maxExecIDLen = 32

// OutSocketName returns the file name of the output socket of exec id,
// and false when id cannot name one (only 1 to 32 lower-case hex digits
// can: an ID never makes a path).
func OutSocketName(id string) (string, bool) {
	if len(id) == 0 || len(id) > maxExecIDLen {
		return "", false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return "x" + id + ".out", true
}

// OutDialer connects to the output socket name (see OutSocketName) of the
// agent's box. It must connect only to a socket in that box's own
// directory, never through a link the box may have planted. It is called
// concurrently (an exec's two connections are dialed at once).
type OutDialer func(ctx context.Context, name string) (net.Conn, error)

// SetOutDialer lets the execs started on c with Request.HostOut ask for
// host-connected output, reached through dial. Call it before the first
// Exec.
func (c *Conn) SetOutDialer(dial OutDialer) { c.dialOut = dial }

// connectOut dials the output socket of exec id twice, both at once (each
// connect crosses into the box), and tags the connections: the result holds
// stdout first, then stderr.
func (c *Conn) connectOut(ctx context.Context, id string) ([]net.Conn, error) {
	name, ok := OutSocketName(id)
	if !ok {
		return nil, fmt.Errorf("agent exec %s: bad exec ID for an output socket: %w", id, ErrProtocol)
	}
	tags := []byte{OutTagStdout, OutTagStderr}
	outs := make([]net.Conn, len(tags))
	errs := make([]error, len(tags))
	var wg sync.WaitGroup
	for i, tag := range tags {
		wg.Go(func() {
			oc, err := c.dialOut(ctx, name)
			if err == nil {
				if _, err = oc.Write([]byte{tag}); err != nil {
					oc.Close()
				}
			}
			if err != nil {
				errs[i] = err
				return
			}
			if cw, ok := oc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite() // the host never writes more
			}
			outs[i] = oc
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, oc := range outs {
			if oc != nil {
				oc.Close()
			}
		}
		return nil, fmt.Errorf("agent exec %s: connect output: %w", id, err)
	}
	return outs, nil
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// outWriters serializes the writes of an exec's output to its writers: the
// frames of a relayed exec come in one goroutine, the sockets of a
// host-connected one in two, and callers may give one writer for both.
type outWriters struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

// write passes b to *w; a writer that fails is dropped (the process must
// not block on it).
func (o *outWriters) write(w *io.Writer, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if *w != nil {
		if _, err := (*w).Write(b); err != nil {
			*w = nil
		}
	}
}

// outDrain is the host side of an exec's output sockets.
type outDrain struct {
	conns  []net.Conn
	exitAt atomic.Int64 // unix ns of the exit; 0 while running
	wg     sync.WaitGroup
}

// start copies conns[0] to stdout and conns[1] to stderr until EOF or the
// drain ends.
func (d *outDrain) start(o *outWriters) {
	for i, c := range d.conns {
		w := &o.stdout
		if i == 1 {
			w = &o.stderr
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.pump(c, func(b []byte) { o.write(w, b) })
		}()
	}
}

func (d *outDrain) pump(c net.Conn, write func([]byte)) {
	buf := make([]byte, DataChunk)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			write(buf[:n])
			if at := d.exitAt.Load(); at != 0 {
				if time.Since(time.Unix(0, at)) > DrainMax {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(DrainIdle))
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// A loaded host may reach the read after the deadline
			// passed, and Go then does not read at all: take what
			// the exited process left without waiting.
			readNow(c, buf, func(b []byte) bool { write(b); return true })
		}
		if err != nil {
			return
		}
	}
}

// finish drains and closes the sockets: the process is gone, so what it
// wrote is in the sockets already. It returns once they are at EOF or
// idle (at most DrainMax later).
func (d *outDrain) finish() {
	d.exitAt.Store(time.Now().UnixNano())
	for _, c := range d.conns {
		_ = c.SetReadDeadline(time.Now().Add(DrainIdle))
	}
	d.wg.Wait()
	closeAll(d.conns)
}
