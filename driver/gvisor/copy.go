package gvisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"syscall"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Exit codes of the in-box helper (see package boxinit).
const (
	helperUnsafe   = 3
	helperNotFound = 4
	helperBadTar   = 5
)

// CopyIn extracts the tar stream r into dst inside the box with the in-box
// helper (`/.boxrun/init tar-x dst`), so it works in images without tar. A
// relative dst is taken from the box's workdir.
func (d *Driver) CopyIn(ctx context.Context, handle, dst string, r io.Reader) error {
	if r == nil {
		r = bytes.NewReader(nil)
	}
	return d.helper(ctx, handle, "tar-x", dst, r, nil)
}

// CopyOut writes a tar stream of src inside the box to w with the in-box
// helper (`/.boxrun/init tar-c src`). A missing src wraps ErrNotFound.
func (d *Driver) CopyOut(ctx context.Context, handle, src string, w io.Writer) error {
	return d.helper(ctx, handle, "tar-c", src, nil, w)
}

// helper runs the in-box helper in mode on p and maps its exit code.
func (d *Driver) helper(ctx context.Context, h, mode, p string, stdin io.Reader, stdout io.Writer) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return fmt.Errorf("gvisor: %s: bad path %q: %w", mode, p, boxapi.ErrInvalid)
	}
	m, err := d.runningMeta(h)
	if err != nil {
		return err
	}
	if !path.IsAbs(p) {
		p = path.Join(m.Workdir, p)
	}
	if c, err := d.agent(ctx, h); err == nil {
		return d.agentCopy(ctx, h, c, mode, path.Clean(p), stdin, stdout)
	}
	stderr := &limitWriter{max: 64 << 10}
	spec := sandbox.ProcessSpec{
		Cmd:    []string{initMount, mode, path.Clean(p)},
		Dir:    "/",
		Stdin:  stdin,
		Stdout: stdout,
		Stderr: stderr,
	}
	proc, startErr, err := d.startProcess(ctx, h, m, spec)
	if err != nil {
		return err
	}
	if startErr != "" {
		return fmt.Errorf("gvisor: %s: %s: %w", mode, startErr, boxapi.ErrRuntime)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = proc.Signal(context.Background(), syscall.SIGKILL)
		case <-done:
		}
	}()
	code, err := proc.Wait()
	close(done)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("gvisor: %s %s: %w", mode, p, ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	switch code {
	case 0:
		return nil
	case helperUnsafe, helperBadTar:
		return fmt.Errorf("gvisor: %s %s: %s: %w", mode, p, msg, boxapi.ErrInvalid)
	case helperNotFound:
		return fmt.Errorf("gvisor: %s %s: %s: %w", mode, p, msg, boxapi.ErrNotFound)
	default:
		return fmt.Errorf("gvisor: %s %s: exit %d: %s: %w", mode, p, code, msg, boxapi.ErrRuntime)
	}
}

// agentCopy runs a copy through the agent c.
func (d *Driver) agentCopy(ctx context.Context, h string, c *agentproto.Conn, mode, p string, r io.Reader, w io.Writer) error {
	if mode == "tar-x" {
		return d.agentOf(h, c).CopyIn(ctx, p, r)
	}
	return d.agentOf(h, c).CopyOut(ctx, p, w)
}
