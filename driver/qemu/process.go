package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/hashicorp/yamux"
)

// Exec starts spec in the box. The environment is the box's env with
// spec.Env over it; Dir defaults to the box's workdir.
func (d *Driver) Exec(ctx context.Context, handle string, spec sandbox.ProcessSpec) (sandbox.Process, error) {
	if len(spec.Cmd) == 0 {
		return nil, fmt.Errorf("qemu: exec: empty command: %w", boxapi.ErrInvalid)
	}
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return nil, err
	}
	b, err := d.get(handle)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	env := mergeEnv(b.state.Env, spec.Env)
	user := b.state.User
	if user.Home != "" && !userdb.HasEnv(env, "HOME") {
		env = append(env, "HOME="+user.Home)
	}
	dir := spec.Dir
	if dir == "" {
		dir = b.state.Workdir
	}
	b.mu.Unlock()
	var rnd [8]byte
	rand.Read(rnd[:])
	req := &agentproto.Request{
		Op:   agentproto.OpExec,
		ID:   hex.EncodeToString(rnd[:]),
		Cmd:  spec.Cmd,
		Env:  env,
		Dir:  dir,
		TTY:  spec.TTY,
		User: &agentproto.User{UID: user.UID, GID: user.GID, Groups: user.Groups},
	}
	if spec.TTY {
		req.Rows, req.Cols = spec.Size.Rows, spec.Size.Cols
	}
	st, release, err := conn.open(ctx, req)
	if err != nil {
		return nil, err
	}
	var res agentproto.Result
	err = agentproto.ReadJSON(st, agentproto.FrameResult, &res)
	release()
	if err != nil {
		st.Close()
		return nil, ctxErr(ctx, fmt.Errorf("qemu: exec: %w", err))
	}
	if err := resultErr("exec", res); err != nil {
		st.Close()
		return nil, fmt.Errorf("qemu: %w", err)
	}
	p := &process{conn: conn, id: req.ID, st: st, done: make(chan struct{})}
	go p.pumpStdin(spec.Stdin)
	go p.readOutput(spec.Stdout, spec.Stderr)
	return p, nil
}

// mergeEnv returns base with over applied, keeping the first position of
// each key.
func mergeEnv(base, over []string) []string {
	out := make([]string, 0, len(base)+len(over))
	idx := map[string]int{}
	for _, kv := range append(append([]string{}, base...), over...) {
		k, _, _ := cutEnv(kv)
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func cutEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// process is a running exec: one yamux stream.
type process struct {
	conn *agentConn
	id   string
	st   *yamux.Stream

	done chan struct{} // closed when the output is written and the exit known
	code int
	err  error

	closeOnce sync.Once
}

func (p *process) pumpStdin(r io.Reader) {
	if r != nil {
		if _, err := io.Copy(agentproto.DataWriter{W: p.st, Typ: agentproto.FrameData}, r); err != nil {
			return
		}
	}
	agentproto.WriteFrame(p.st, agentproto.FrameEOF, nil)
}

func (p *process) readOutput(stdout, stderr io.Writer) {
	defer close(p.done)
	defer p.closeOnce.Do(func() { p.st.Close() })
	for {
		typ, payload, err := agentproto.ReadFrame(p.st)
		if err != nil {
			p.err = fmt.Errorf("qemu: exec %s: lost the sandbox connection: %w", p.id, err)
			return
		}
		switch typ {
		case agentproto.FrameStdout:
			if stdout != nil {
				stdout.Write(payload)
			}
		case agentproto.FrameStderr:
			if stderr != nil {
				stderr.Write(payload)
			}
		case agentproto.FrameExit:
			var ex agentproto.Exit
			if err := json.Unmarshal(payload, &ex); err != nil {
				p.err = fmt.Errorf("qemu: exec %s: bad exit frame: %w", p.id, err)
				return
			}
			p.code = ex.Code
			if ex.Error != "" {
				p.err = errors.New(ex.Error)
			}
			return
		}
	}
}

// Wait returns the exit code once the output is written.
func (p *process) Wait() (int, error) {
	<-p.done
	return p.code, p.err
}

// Signal sends sig to the process group.
func (p *process) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := p.conn.call(ctx, &agentproto.Request{Op: agentproto.OpSignal, ID: p.id, Signal: int(sig)})
	if err != nil && errors.Is(err, boxapi.ErrNotFound) {
		select {
		case <-p.done:
			return nil // already exited
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// Resize sets the terminal size.
func (p *process) Resize(ctx context.Context, size boxapi.TermSize) error {
	_, err := p.conn.call(ctx, &agentproto.Request{Op: agentproto.OpResize, ID: p.id, Rows: size.Rows, Cols: size.Cols})
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// CopyIn extracts the tar stream r into dst inside the box.
func (d *Driver) CopyIn(ctx context.Context, handle, dst string, r io.Reader) error {
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return err
	}
	st, release, err := conn.open(ctx, &agentproto.Request{Op: agentproto.OpCopyIn, Path: dst})
	if err != nil {
		return err
	}
	defer release()
	defer st.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(agentproto.DataWriter{W: st, Typ: agentproto.FrameData}, r)
		if err == nil {
			err = agentproto.WriteFrame(st, agentproto.FrameEOF, nil)
		}
		sent <- err
	}()
	var res agentproto.Result
	if err := agentproto.ReadJSON(st, agentproto.FrameResult, &res); err != nil {
		select {
		case serr := <-sent:
			if serr != nil {
				return ctxErr(ctx, fmt.Errorf("qemu: copy in: %w", serr))
			}
		default:
		}
		return ctxErr(ctx, fmt.Errorf("qemu: copy in: %w", err))
	}
	if err := resultErr("copy in", res); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if err := <-sent; err != nil {
		return fmt.Errorf("qemu: copy in: %w", err)
	}
	return nil
}

// CopyOut writes a tar stream of src inside the box to w.
func (d *Driver) CopyOut(ctx context.Context, handle, src string, w io.Writer) error {
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return err
	}
	st, release, err := conn.open(ctx, &agentproto.Request{Op: agentproto.OpCopyOut, Path: src})
	if err != nil {
		return err
	}
	defer release()
	defer st.Close()
	if _, err := io.Copy(w, &agentproto.DataReader{R: st}); err != nil {
		return ctxErr(ctx, fmt.Errorf("qemu: copy out: %w", err))
	}
	var res agentproto.Result
	if err := agentproto.ReadJSON(st, agentproto.FrameResult, &res); err != nil {
		return ctxErr(ctx, fmt.Errorf("qemu: copy out: %w", err))
	}
	if err := resultErr("copy out", res); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}
