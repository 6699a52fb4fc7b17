package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Serve timeouts. There is no read or write timeout for whole requests:
// creates, runs and waits may take minutes, SSE and WebSocket streams last
// as long as their exec or terminal.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownGrace     = 10 * time.Second
)

// Serve serves the API on ln until ctx ends, then shuts down gracefully:
// it stops accepting, ends SSE streams and terminal sessions (killing their
// programs), waits up to 10s for other in-flight requests (a create or an
// exec start then finishes or fails cleanly in the Service) and closes what
// is left. It returns nil after a shutdown caused by ctx, or the error that
// stopped the listener. Serve closes ln. The Service is not closed.
//
// Requests net/http cannot parse (e.g. "%ZZ" in the path) also get the JSON
// envelope, VALIDATION_ERROR with net/http's status (see rawerrors.go).
//
// Serve refuses a TCP listener on a non-loopback address unless the Server
// has a token (WithToken). A Server's streams cannot be reopened once a
// Serve has shut down: use one Server per Serve.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.token == "" && !isLoopbackListener(ln) {
		ln.Close()
		return fmt.Errorf("httpapi: refusing to serve on %s without a token: set one (BOXRUN_TOKEN) or listen on loopback or a Unix socket", ln.Addr())
	}
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(jsonErrListener{ln}) }()

	select {
	case err := <-errc:
		s.closeStreams()
		return fmt.Errorf("httpapi: serve: %w", err)
	case <-ctx.Done():
	}
	s.closeStreams()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		cancelBase() // fail what is still running
		hs.Close()
	}
	s.waitStreams(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("httpapi: serve: %w", serr)
	}
	return nil
}

// closeStreams ends every SSE stream and terminal session (once).
func (s *Server) closeStreams() {
	s.drainOnce.Do(func() { close(s.drain) })
}

// waitStreams waits for streaming handlers (which Shutdown does not track
// once a WebSocket is hijacked) until ctx ends.
func (s *Server) waitStreams(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// isLoopbackListener reports whether ln only accepts local connections: a
// Unix socket, or TCP bound to a loopback address.
func isLoopbackListener(ln net.Listener) bool {
	switch a := ln.Addr().(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// Listen opens the listener for Serve. network is "tcp" (addr host:port,
// e.g. the default "127.0.0.1:9090") or "unix" (addr a socket path). For
// "unix", a stale socket file at addr (nobody accepting) is removed first, a
// live one is an error, any other file is left alone and is an error; the
// new socket gets mode 0600 (owner only) and is removed when the listener
// closes.
func Listen(network, addr string) (net.Listener, error) {
	return listen(network, addr, -1)
}

// ListenUnixGroup is Listen("unix", addr) for a socket that a group shares:
// the socket gets mode 0660 and group gid, so the members of that group can
// connect and every other user cannot (connecting to a Unix socket needs
// write permission on it). The directory of addr must let the members
// reach it. gid must be >= 0.
func ListenUnixGroup(addr string, gid int) (net.Listener, error) {
	if gid < 0 {
		return nil, fmt.Errorf("httpapi: listen: bad group id %d", gid)
	}
	return listen("unix", addr, gid)
}

// listen is Listen; gid >= 0 makes a Unix socket 0660 with that group.
func listen(network, addr string, gid int) (net.Listener, error) {
	if network != "unix" {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, fmt.Errorf("httpapi: listen: %w", err)
		}
		return ln, nil
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("httpapi: listen: %s exists and is not a socket", addr)
		}
		c, err := net.DialTimeout("unix", addr, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("httpapi: listen: %s: %w", addr, syscall.EADDRINUSE)
		}
		if err := os.Remove(addr); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("httpapi: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("httpapi: listen: %w", err)
	}
	// Owner only first: the group is set before the group may connect.
	if err := os.Chmod(addr, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("httpapi: chmod socket: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(addr, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("httpapi: chown socket to group %d: %w", gid, err)
		}
		if err := os.Chmod(addr, 0o660); err != nil {
			ln.Close()
			return nil, fmt.Errorf("httpapi: chmod socket: %w", err)
		}
	}
	return ln, nil
}
