//go:build linux

package main

import (
	"bytes"
	"errors"
	"log"
	"slices"

	"github.com/boxrun/boxrun/agentproto"
	"io"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// portConn is one host connection over the virtio-serial port fd (opened
// O_NONBLOCK). A read of 0 bytes means the host disconnected; a write
// waits while the port is not writable, and both give up once the
// connection is closed, so a dead session never writes into the next one.
type portConn struct {
	fd     int
	prefix []byte
	closed atomic.Bool
	hello  []byte
	next   []byte // a chunk that started with a Hello: the next connection
}

var errPortClosed = errors.New("port connection closed")

func (c *portConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	for {
		if c.closed.Load() {
			return 0, errPortClosed
		}
		n, err := unix.Read(c.fd, p)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			pollFd(c.fd, unix.POLLIN, 200)
		case err != nil:
			log.Printf("port read: %v", err)
			return 0, err
		case n == 0:
			log.Printf("port read: EOF")
			return 0, io.EOF
		default:
			if bytes.HasPrefix(p[:n], c.magic()) {
				// A new host connected without the agent seeing the
				// old one leave: end this session.
				c.next = slices.Clone(p[:n])
				c.closed.Store(true)
				return 0, io.EOF
			}
			return n, nil
		}
	}
}

func (c *portConn) magic() []byte {
	if c.hello == nil {
		c.hello = agentproto.HelloMagic()
	}
	return c.hello
}

func (c *portConn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if c.closed.Load() {
			return done, errPortClosed
		}
		n, err := unix.Write(c.fd, p[done:])
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			pollFd(c.fd, unix.POLLOUT, 200)
		case err != nil:
			log.Printf("port write: %v", err)
			return done, err
		default:
			done += n
		}
	}
	return done, nil
}

// Close ends this connection; the fd stays open for the next one.
func (c *portConn) Close() error {
	c.closed.Store(true)
	return nil
}

func pollFd(fd int, events int16, ms int) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	unix.Poll(fds, ms)
}

// handshake reads until a Hello arrives (scanning carry first), answers
// it, and returns the bytes that followed the Hello: the start of the new
// session.
func handshake(fd int, carry []byte) []byte {
	magic := agentproto.HelloMagic()
	buf := carry
	chunk := make([]byte, 64<<10)
	for {
		if i := bytes.Index(buf, magic); i >= 0 && len(buf) >= i+len(magic)+agentproto.NonceLen {
			nonce := string(buf[i+len(magic) : i+len(magic)+agentproto.NonceLen])
			rest := slices.Clone(buf[i+len(magic)+agentproto.NonceLen:])
			w := &portConn{fd: fd}
			if _, err := w.Write(agentproto.Ready(nonce)); err != nil {
				log.Printf("handshake: %v", err)
				buf = rest
				continue
			}
			return rest
		}
		// Keep only what could be the start of a magic.
		if len(buf) > len(magic)+agentproto.NonceLen {
			buf = slices.Clone(buf[len(buf)-len(magic)-agentproto.NonceLen:])
		}
		n, err := unix.Read(fd, chunk)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			pollFd(fd, unix.POLLIN, 200)
		case err != nil || n == 0:
			// No host connected (poll would report POLLHUP at once).
			unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
		default:
			buf = append(buf, chunk[:n]...)
		}
	}
}
