package gvisor

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.FileWatcher = (*Driver)(nil)

// Watch follows path inside the box with inotify in the box's agent (see
// agentproto.Watcher: the agent holds at most agentproto.WatchQueue
// changes and reports what it drops as an overflow). A relative path is
// taken from the box's workdir. ctx bounds the whole watch. A box whose
// agent does not answer cannot be watched (RUNTIME_ERROR).
func (d *Driver) Watch(ctx context.Context, handle, p string, recursive bool) (sandbox.FileWatch, error) {
	if err := d.checkOpen(); err != nil {
		return nil, err
	}
	if p == "" || strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("gvisor: watch: bad path %q: %w", p, boxapi.ErrInvalid)
	}
	m, err := d.runningMeta(handle)
	if err != nil {
		return nil, err
	}
	if !path.IsAbs(p) {
		p = path.Join(m.Workdir, p)
	}
	p = path.Clean(p)
	c, err := d.agent(ctx, handle)
	if err != nil {
		return nil, fmt.Errorf("gvisor: watch: the box's agent does not answer (%v): %w", err, boxapi.ErrRuntime)
	}
	return d.agentOf(handle, c).Watch(ctx, p, recursive)
}

var _ sandbox.Lister = (*Driver)(nil)

// List returns the entries of the directory dir in the box (see
// sandbox.Lister), read by the box's agent; a relative dir is taken from
// the box's workdir. A box whose agent does not answer cannot be listed
// (RUNTIME_ERROR).
func (d *Driver) List(ctx context.Context, handle, dir string) ([]boxapi.FileEntry, bool, error) {
	if err := d.checkOpen(); err != nil {
		return nil, false, err
	}
	if dir == "" || strings.ContainsRune(dir, 0) {
		return nil, false, fmt.Errorf("gvisor: list: bad path %q: %w", dir, boxapi.ErrInvalid)
	}
	m, err := d.runningMeta(handle)
	if err != nil {
		return nil, false, err
	}
	if !path.IsAbs(dir) {
		dir = path.Join(m.Workdir, dir)
	}
	c, err := d.agent(ctx, handle)
	if err != nil {
		return nil, false, fmt.Errorf("gvisor: list: the box's agent does not answer (%v): %w", err, boxapi.ErrRuntime)
	}
	return d.agentOf(handle, c).List(ctx, path.Clean(dir))
}
