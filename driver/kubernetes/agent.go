package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

const (
	// agentHandshake bounds the agent's answer on a fresh relay.
	agentHandshake = 20 * time.Second
	// agentStartTimeout bounds the wait for an exec to be reported started.
	agentStartTimeout = 30 * time.Second
)

// agentBox is the relay of one box: an exec of `/.boxrun/init relay` whose
// stdin and stdout carry an agentproto session.
type agentBox struct {
	conn   *agentproto.Conn
	cancel context.CancelFunc // ends the relay's exec stream
}

func (ab *agentBox) close() {
	ab.conn.Close()
	ab.cancel()
}

// dialAgent starts a relay exec into the pod of h and runs the handshake.
// The exec stream lives until the connection is closed or the driver is.
func (d *Driver) dialAgent(ctx context.Context, h string) (*agentBox, error) {
	ex, err := d.executor(h, []string{initPath, "relay"}, false)
	if err != nil {
		return nil, err
	}
	local, remote := net.Pipe()
	rctx, cancel := context.WithCancel(d.ctx)
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := ex.StreamWithContext(rctx, remotecommand.StreamOptions{Stdin: remote, Stdout: remote, Stderr: &lockedBuffer{b: &stderr}})
		remote.Close()
		done <- err
	}()
	c, err := agentproto.Handshake(ctx, local, agentHandshake)
	if err != nil {
		cancel()
		select {
		case serr := <-done:
			if serr != nil {
				err = fmt.Errorf("%w (relay: %v %s)", err, serr, strings.TrimSpace(stderr.String()))
			}
		case <-time.After(time.Second):
		}
		return nil, err
	}
	return &agentBox{conn: c, cancel: cancel}, nil
}

// lockedBuffer is a bytes.Buffer for one writer goroutine and later reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

// executor returns a pods/exec executor of cmd in the box container of h
// (WebSocket, falling back to SPDY for older API servers).
func (d *Driver) executor(h string, cmd []string, tty bool) (remotecommand.Executor, error) {
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.cfg.Namespace).Name(h).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: boxContainer, Command: cmd, Stdin: true, Stdout: true, Stderr: !tty, TTY: tty}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(d.rest, http.MethodGet, req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: exec: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(d.rest, http.MethodPost, req.URL())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: exec: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// agent returns the agent connection of h, connecting when there is none
// or the last one ended.
func (d *Driver) agent(ctx context.Context, h string) (*agentproto.Conn, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("kubernetes: driver closed: %w", boxapi.ErrConflict)
	}
	if ab := d.agents[h]; ab != nil && !ab.conn.Closed() {
		d.mu.Unlock()
		return ab.conn, nil
	}
	d.mu.Unlock()
	ab, err := d.dialAgent(ctx, h)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		ab.close()
		return nil, fmt.Errorf("kubernetes: driver closed: %w", boxapi.ErrConflict)
	}
	if old := d.agents[h]; old != nil && !old.conn.Closed() {
		ab.close()
		return old.conn, nil
	} else if old != nil {
		old.close()
	}
	d.agents[h] = ab
	return ab.conn, nil
}

// closeAgent ends the relay of h (its execs end with it).
func (d *Driver) closeAgent(h string) {
	d.mu.Lock()
	ab := d.agents[h]
	delete(d.agents, h)
	d.mu.Unlock()
	if ab != nil {
		ab.close()
	}
}

// runningMeta returns the metadata of a running box (ErrConflict when it
// is stopped, ErrNotFound when it does not exist).
func (d *Driver) runningMeta(ctx context.Context, h string) (*boxMeta, error) {
	pvc, err := d.getClaim(ctx, h)
	if err != nil {
		return nil, err
	}
	st, err := d.State(ctx, h)
	if err != nil {
		return nil, err
	}
	if st != sandbox.Running {
		return nil, fmt.Errorf("kubernetes: box %s is not running: %w", h, boxapi.ErrConflict)
	}
	return metaOf(pvc)
}

// Exec starts spec through the box's agent, as the box's user.
func (d *Driver) Exec(ctx context.Context, h string, spec sandbox.ProcessSpec) (sandbox.Process, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	if len(spec.Cmd) == 0 || spec.Cmd[0] == "" {
		return nil, fmt.Errorf("kubernetes: exec: empty command: %w", boxapi.ErrInvalid)
	}
	m, err := d.runningMeta(ctx, h)
	if err != nil {
		return nil, err
	}
	c, err := d.agent(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: agent of %s: %w: %w", h, err, boxapi.ErrRuntime)
	}
	dir := spec.Dir
	if dir == "" {
		dir = m.Workdir
	}
	env := mergeEnv(m.Env, spec.Env)
	if m.User.Home != "" && !hasEnv(env, "HOME") {
		env = append(env, "HOME="+m.User.Home)
	}
	req := &agentproto.Request{
		Cmd: spec.Cmd, Env: env, Dir: dir, StrictDir: true, TTY: spec.TTY,
		User: &agentproto.User{UID: m.User.UID, GID: m.User.GID, Groups: m.User.Groups},
	}
	var stderr io.Writer = spec.Stderr
	if spec.TTY {
		req.Rows, req.Cols = spec.Size.Rows, spec.Size.Cols
		stderr = nil
	}
	sctx, cancel := context.WithTimeout(ctx, agentStartTimeout)
	defer cancel()
	ap, err := c.Exec(sctx, req, spec.Stdin, spec.Stdout, stderr)
	if err != nil {
		var re *agentproto.RemoteError
		switch {
		case errors.As(err, &re):
			return nil, fmt.Errorf("kubernetes: exec %q: %s: %w", spec.Cmd[0], re.Msg, boxapi.ErrInvalid)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("kubernetes: exec: %w", ctx.Err())
		case errors.Is(err, agentproto.ErrProtocol):
			d.closeAgent(h)
		}
		return nil, fmt.Errorf("kubernetes: exec: %w: %w", err, boxapi.ErrRuntime)
	}
	return &process{d: d, h: h, p: ap, tty: spec.TTY}, nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := cut(kv); k == key {
			return true
		}
	}
	return false
}

// process is an exec running through the agent.
type process struct {
	d   *Driver
	h   string
	p   *agentproto.Process
	tty bool
}

// Wait returns the exit code once the output is written; a relay that
// ended (the box stopped or died) is ErrRuntime.
func (p *process) Wait() (int, error) {
	code, err := p.p.Wait()
	if err != nil {
		return -1, fmt.Errorf("kubernetes: %w: %w", err, boxapi.ErrRuntime)
	}
	return code, nil
}

// Signal sends sig to the process group (for a TTY exec, KILL, TERM and
// HUP to its session).
func (p *process) Signal(ctx context.Context, sig syscall.Signal) error {
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
		if sig == syscall.SIGKILL {
			p.p.Close()
		}
		return fmt.Errorf("kubernetes: signal: %w: %w", err, boxapi.ErrRuntime)
	}
	return nil
}

// Resize sets the terminal size of a TTY exec.
func (p *process) Resize(ctx context.Context, size boxapi.TermSize) error {
	if !p.tty {
		return fmt.Errorf("kubernetes: resize: not a TTY process: %w", boxapi.ErrInvalid)
	}
	select {
	case <-p.p.Done():
		return nil
	default:
	}
	if err := p.p.Resize(ctx, size.Rows, size.Cols); err != nil {
		return fmt.Errorf("kubernetes: resize: %w", err)
	}
	return nil
}

// CopyIn extracts the tar stream r into dst through the agent (confined
// to dst; see package tarutil). A relative dst is taken from the workdir.
func (d *Driver) CopyIn(ctx context.Context, h, dst string, r io.Reader) error {
	return d.copy(ctx, h, dst, r, nil)
}

// CopyOut writes a tar stream of src to w through the agent.
func (d *Driver) CopyOut(ctx context.Context, h, src string, w io.Writer) error {
	return d.copy(ctx, h, src, nil, w)
}

func (d *Driver) copy(ctx context.Context, h, p string, r io.Reader, w io.Writer) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return fmt.Errorf("kubernetes: copy: bad path %q: %w", p, boxapi.ErrInvalid)
	}
	m, err := d.runningMeta(ctx, h)
	if err != nil {
		return err
	}
	if !path.IsAbs(p) {
		p = path.Join(m.Workdir, p)
	}
	p = path.Clean(p)
	c, err := d.agent(ctx, h)
	if err != nil {
		return fmt.Errorf("kubernetes: agent of %s: %w: %w", h, err, boxapi.ErrRuntime)
	}
	op := "copy out"
	if w == nil {
		op = "copy in"
		if r == nil {
			r = bytes.NewReader(nil)
		}
		err = c.CopyIn(ctx, p, r)
	} else {
		err = c.CopyOut(ctx, p, w)
	}
	var re *agentproto.RemoteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && re.Kind == agentproto.KindNotFound:
		return fmt.Errorf("kubernetes: %s %s: %s: %w", op, p, re.Msg, boxapi.ErrNotFound)
	case errors.As(err, &re) && re.Kind == agentproto.KindInvalid:
		return fmt.Errorf("kubernetes: %s %s: %s: %w", op, p, re.Msg, boxapi.ErrInvalid)
	case errors.As(err, &re):
		return fmt.Errorf("kubernetes: %s %s: %s: %w", op, p, re.Msg, boxapi.ErrRuntime)
	case ctx.Err() != nil:
		return fmt.Errorf("kubernetes: %s %s: %w", op, p, ctx.Err())
	case errors.Is(err, agentproto.ErrProtocol):
		d.closeAgent(h)
	}
	return fmt.Errorf("kubernetes: %s %s: %w: %w", op, p, err, boxapi.ErrRuntime)
}
