package qemu

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
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
	req := &agentproto.Request{
		Cmd:  spec.Cmd,
		Env:  env,
		Dir:  dir,
		TTY:  spec.TTY,
		User: &agentproto.User{UID: user.UID, GID: user.GID, Groups: user.Groups},
	}
	if spec.TTY {
		req.Rows, req.Cols = spec.Size.Rows, spec.Size.Cols
	}
	ap, err := conn.Exec(ctx, req, spec.Stdin, spec.Stdout, spec.Stderr)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", agentErr(ctx, "exec", err))
	}
	return &process{p: ap}, nil
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

// process is a running exec: one agentproto stream.
type process struct{ p *agentproto.Process }

// Wait returns the exit code once the output is written. A lost agent or
// a broken stream is ErrRuntime.
func (p *process) Wait() (int, error) {
	code, err := p.p.Wait()
	if err != nil {
		return -1, fmt.Errorf("qemu: %w: %w", err, boxapi.ErrRuntime)
	}
	return code, nil
}

// Signal sends sig to the process group; an exec that has ended is not an
// error.
func (p *process) Signal(ctx context.Context, sig syscall.Signal) error {
	if err := p.p.Signal(ctx, sig, false); err != nil {
		return fmt.Errorf("qemu: %w", agentErr(ctx, "signal", err))
	}
	return nil
}

// Resize sets the terminal size.
func (p *process) Resize(ctx context.Context, size boxapi.TermSize) error {
	if err := p.p.Resize(ctx, size.Rows, size.Cols); err != nil {
		return fmt.Errorf("qemu: %w", agentErr(ctx, "resize", err))
	}
	return nil
}

// CopyIn extracts the tar stream r into dst inside the box.
func (d *Driver) CopyIn(ctx context.Context, handle, dst string, r io.Reader) error {
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return err
	}
	if err := conn.CopyIn(ctx, dst, r); err != nil {
		return fmt.Errorf("qemu: %w", agentErr(ctx, "copy in", err))
	}
	return nil
}

// CopyOut writes a tar stream of src inside the box to w.
func (d *Driver) CopyOut(ctx context.Context, handle, src string, w io.Writer) error {
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return err
	}
	if err := conn.CopyOut(ctx, src, w); err != nil {
		return fmt.Errorf("qemu: %w", agentErr(ctx, "copy out", err))
	}
	return nil
}
