//go:build linux

package main

import (
	"errors"
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
			return 0, err
		case n == 0:
			return 0, io.EOF
		default:
			return n, nil
		}
	}
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

// waitHost blocks until the host sends data and returns the first bytes.
func waitHost(fd int) []byte {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == nil && n > 0 {
			return buf[:n]
		}
		if err == unix.EAGAIN {
			pollFd(fd, unix.POLLIN, 200)
			continue
		}
		// 0 (no host connected) or a transient error: poll reports
		// POLLHUP at once while disconnected, so sleep instead.
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
}
