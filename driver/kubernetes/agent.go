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
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
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
	meta   *boxMeta           // the box's metadata, read when the relay was made
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
// or the last one ended; m is kept with a new connection (see session).
func (d *Driver) agent(ctx context.Context, h string, m *boxMeta) (*agentproto.Conn, error) {
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
	ab.meta = m
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

// session returns the agent connection and metadata of a running box. A
// live relay proves the box runs (the relay ends with its pod), so an exec
// or copy on a box with one costs no API request; otherwise the claim and
// the pod are read first (ErrNotFound, ErrConflict when stopped).
func (d *Driver) session(ctx context.Context, h string) (*agentproto.Conn, *boxMeta, error) {
	d.mu.Lock()
	if ab := d.agents[h]; ab != nil && ab.meta != nil && !ab.conn.Closed() {
		d.mu.Unlock()
		return ab.conn, ab.meta, nil
	}
	d.mu.Unlock()
	m, err := d.runningMeta(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	c, err := d.agent(ctx, h, m)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes: agent of %s: %w: %w", h, err, boxapi.ErrRuntime)
	}
	return c, m, nil
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
	c, m, err := d.session(ctx, h)
	if err != nil {
		return nil, err
	}
	dir := spec.Dir
	if dir == "" {
		dir = m.Workdir
	}
	env := mergeEnv(m.Env, spec.Env)
	if m.User.Home != "" && !hasEnv(env, "HOME") {
		env = append(env, "HOME="+m.User.Home)
	}
	req := agentexec.Request(spec, env, dir, agentproto.User{UID: m.User.UID, GID: m.User.GID, Groups: m.User.Groups})
	p, err := d.agentOf(h, c).Start(ctx, req, spec, agentStartTimeout)
	if err != nil {
		if errors.Is(err, agentproto.ErrProtocol) {
			d.dropAgent(h, c)
		}
		return nil, err
	}
	return p, nil
}

// agentOf is the shared exec/copy adapter over the connection c of h: a
// connection that breaks the protocol is closed (the next call redials).
func (d *Driver) agentOf(h string, c *agentproto.Conn) *agentexec.Agent {
	return &agentexec.Agent{Name: "kubernetes", Conn: c, Broken: func(error) { d.dropAgent(h, c) }}
}

// dropAgent ends the relay of h if its connection is still c.
func (d *Driver) dropAgent(h string, c *agentproto.Conn) {
	d.mu.Lock()
	ab := d.agents[h]
	if ab != nil && ab.conn == c {
		delete(d.agents, h)
	} else {
		ab = nil
	}
	d.mu.Unlock()
	if ab != nil {
		ab.close()
	}
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := cut(kv); k == key {
			return true
		}
	}
	return false
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
	a, p, err := d.agentPath(ctx, h, "copy", p)
	if err != nil {
		return err
	}
	if w == nil {
		if r == nil {
			r = bytes.NewReader(nil)
		}
		return a.CopyIn(ctx, p, r)
	}
	return a.CopyOut(ctx, p, w)
}

// Watch follows path p in the box (relative: from the workdir) with the
// agent's inotify (sandbox.FileWatcher).
func (d *Driver) Watch(ctx context.Context, h, p string, recursive bool) (sandbox.FileWatch, error) {
	a, p, err := d.agentPath(ctx, h, "watch", p)
	if err != nil {
		return nil, err
	}
	return a.Watch(ctx, p, recursive)
}

// List returns the entries of directory dir in the box (relative: from the
// workdir) through the agent (sandbox.Lister).
func (d *Driver) List(ctx context.Context, h, dir string) ([]boxapi.FileEntry, bool, error) {
	a, dir, err := d.agentPath(ctx, h, "list", dir)
	if err != nil {
		return nil, false, err
	}
	return a.List(ctx, dir)
}

// agentPath checks the path p of operation op, makes it absolute and clean
// (a relative one is taken from the workdir) and returns the agent of h.
func (d *Driver) agentPath(ctx context.Context, h, op, p string) (*agentexec.Agent, string, error) {
	if err := d.checkOpen(); err != nil {
		return nil, "", err
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return nil, "", fmt.Errorf("kubernetes: %s: bad path %q: %w", op, p, boxapi.ErrInvalid)
	}
	c, m, err := d.session(ctx, h)
	if err != nil {
		return nil, "", err
	}
	if !path.IsAbs(p) {
		p = path.Join(m.Workdir, p)
	}
	return d.agentOf(h, c), path.Clean(p), nil
}

// The optional capabilities the agent gives this driver.
var (
	_ sandbox.FileWatcher = (*Driver)(nil)
	_ sandbox.Lister      = (*Driver)(nil)
)
