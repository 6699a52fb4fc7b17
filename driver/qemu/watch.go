package qemu

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.FileWatcher = (*Driver)(nil)

// Watch follows path inside the VM with inotify in the guest agent (the
// same agent code as gVisor's box init: agentproto.Watcher, at most
// agentproto.WatchQueue changes held in the guest, the rest reported as
// one overflow). A relative path is taken from the box's workdir. ctx
// bounds the whole watch. A missing path is ErrNotFound; a box that is
// not running ErrConflict.
func (d *Driver) Watch(ctx context.Context, handle, p string, recursive bool) (sandbox.FileWatch, error) {
	if p == "" || strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("qemu: watch: bad path %q: %w", p, boxapi.ErrInvalid)
	}
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return nil, err
	}
	if !path.IsAbs(p) {
		b, err := d.get(handle)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		p = path.Join(b.state.Workdir, p)
		b.mu.Unlock()
	}
	p = path.Clean(p)
	w, err := conn.Watch(ctx, p, recursive)
	if err != nil {
		return nil, fmt.Errorf("qemu: watch %s: %w", p, agentErr(ctx, "watch", err))
	}
	return agentexec.NewWatch("qemu", w, nil), nil
}

var _ sandbox.Lister = (*Driver)(nil)

// List returns the entries of the directory dir in the VM (see
// sandbox.Lister), read by the guest agent; a relative dir is taken from
// the box's workdir.
func (d *Driver) List(ctx context.Context, handle, dir string) ([]boxapi.FileEntry, bool, error) {
	if dir == "" || strings.ContainsRune(dir, 0) {
		return nil, false, fmt.Errorf("qemu: list: bad path %q: %w", dir, boxapi.ErrInvalid)
	}
	conn, err := d.agent(ctx, handle)
	if err != nil {
		return nil, false, err
	}
	if !path.IsAbs(dir) {
		b, err := d.get(handle)
		if err != nil {
			return nil, false, err
		}
		b.mu.Lock()
		dir = path.Join(b.state.Workdir, dir)
		b.mu.Unlock()
	}
	ents, more, err := conn.List(ctx, path.Clean(dir))
	if err != nil {
		return nil, false, fmt.Errorf("qemu: list %s: %w", dir, agentErr(ctx, "list", err))
	}
	return agentproto.FileEntries(ents), more, nil
}
