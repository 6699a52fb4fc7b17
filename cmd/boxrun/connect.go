package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/client"
)

// Auto-start timing (spec §14.1: probe with 500 ms, wait up to 30 s).
const (
	probeTimeout   = 500 * time.Millisecond
	startupTimeout = 30 * time.Second
	startupPoll    = 200 * time.Millisecond
)

// socketPath is the default Unix socket of the state directory.
func (c *rootConfig) socketPath() string { return filepath.Join(c.stateDir, "boxrun.sock") }

// target picks the server address: --url/BOXRUN_URL, else
// BOXRUN_HOST/BOXRUN_PORT, else the state dir's socket if it exists, else
// http://127.0.0.1:9090. local reports that the address is the default one,
// which auto-start may replace by a freshly started server on the socket.
func (c *rootConfig) target() (addr string, local bool) {
	if c.url != "" {
		return c.url, false
	}
	host, port := c.getenv("BOXRUN_HOST"), c.getenv("BOXRUN_PORT")
	if host != "" || port != "" {
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "9090"
		}
		return "http://" + host + ":" + port, false
	}
	if st, err := os.Stat(c.socketPath()); err == nil && st.Mode()&os.ModeSocket != 0 {
		return "unix://" + c.socketPath(), true
	}
	return "http://127.0.0.1:9090", true
}

func (c *rootConfig) newClient(addr string) (*client.Client, error) {
	var opts []client.Option
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	return client.New(addr, opts...)
}

// probe reports whether the server behind cl answers GET /v1/info.
func probe(ctx context.Context, cl *client.Client) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := cl.Info(pctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer within %v", client.ErrUnavailable, probeTimeout)
	}
	return err
}

// reach reports whether something listens at cl's address: a connect, no
// request (see client.Reach), bounded by probeTimeout.
func reach(ctx context.Context, cl *client.Client) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return cl.Reach(pctx)
}

// service returns the client of the server, starting a local server in the
// background when nothing listens at the default address (and
// --autostart). It sends no request of its own: the command's first
// request reports a server that is down (or that does not answer).
func (c *rootConfig) service(ctx context.Context) (*client.Client, error) {
	if c.svc != nil {
		return c.svc, nil
	}
	addr, local := c.target()
	cl, err := c.newClient(addr)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if !local || !c.autostart {
		c.svc, c.addr = cl, addr
		return cl, nil
	}
	err = reach(ctx, cl)
	if err == nil {
		c.svc, c.addr = cl, addr
		return cl, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if cl, err = c.startServer(ctx); err != nil {
		return nil, err
	}
	c.svc, c.addr = cl, "unix://"+c.socketPath()
	return cl, nil
}

// startServer runs `boxrun serve --socket <state>/boxrun.sock` detached, with
// its output in <state>/boxrun.log, and waits until it answers.
func (c *rootConfig) startServer(ctx context.Context) (*client.Client, error) {
	fmt.Fprintln(c.stderr, c.dim("Server not running. Starting boxrun serve in background..."))
	fail := func(err error) error {
		fmt.Fprintln(c.stderr, "Error: Could not start BoxRun server.")
		fmt.Fprintln(c.stderr, c.dim("  "+err.Error()))
		fmt.Fprintln(c.stderr, c.dim("  Try starting manually: boxrun serve"))
		return &reportedError{err}
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fail(fmt.Errorf("find own executable: %w", err))
	}
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		return nil, fail(err)
	}
	logPath := filepath.Join(c.stateDir, "boxrun.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fail(err)
	}
	defer logf.Close()
	sock := c.socketPath()
	cmd := exec.Command(exe, "serve", "--socket", sock, "--state-dir", c.stateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survive the CLI and its terminal
	if err := cmd.Start(); err != nil {
		return nil, fail(fmt.Errorf("start %s serve: %w", exe, err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	cl, err := c.newClient("unix://" + sock)
	if err != nil {
		return nil, fail(err)
	}
	deadline := time.Now().Add(startupTimeout)
	for {
		if err := probe(ctx, cl); err == nil {
			fmt.Fprintln(c.stderr, c.dim("Server started."))
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case werr := <-exited:
			return nil, fail(fmt.Errorf("server exited (%v); see %s: %s", werr, logPath, lastLines(logPath, 5)))
		case <-time.After(startupPoll):
		}
		if time.Now().After(deadline) {
			return nil, fail(fmt.Errorf("server not ready after %v; see %s", startupTimeout, logPath))
		}
	}
}

// lastLines returns the last n lines of a file, joined by " | ".
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
