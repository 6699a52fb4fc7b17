package gvisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/boxrun/boxrun/agentproto"
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
	w, err := c.Watch(ctx, p, recursive)
	if err != nil {
		var re *agentproto.RemoteError
		switch {
		case errors.As(err, &re) && re.Kind == agentproto.KindNotFound:
			return nil, fmt.Errorf("gvisor: watch %s: %s: %w", p, re.Msg, boxapi.ErrNotFound)
		case errors.As(err, &re) && re.Kind == agentproto.KindInvalid:
			return nil, fmt.Errorf("gvisor: watch %s: %s: %w", p, re.Msg, boxapi.ErrInvalid)
		case errors.Is(err, agentproto.ErrProtocol):
			d.dropAgent(handle, c, err)
		}
		return nil, fmt.Errorf("gvisor: watch %s: %w: %w", p, err, boxapi.ErrRuntime)
	}
	return &agentWatch{w: w, drop: func(err error) { d.dropAgent(handle, c, err) }}, nil
}

// agentWatch is a sandbox.FileWatch over an agentproto.Watcher.
type agentWatch struct {
	w    *agentproto.Watcher
	drop func(error)
}

func (a *agentWatch) Next() (sandbox.FileChange, error) {
	ev, err := a.w.Next()
	if err != nil {
		if errors.Is(err, agentproto.ErrProtocol) {
			a.drop(err)
		}
		if errors.Is(err, io.EOF) {
			return sandbox.FileChange{}, io.EOF
		}
		return sandbox.FileChange{}, fmt.Errorf("gvisor: watch: %w", err)
	}
	return sandbox.FileChange{Type: ev.Type, Path: ev.Path, OldPath: ev.OldPath, Dir: ev.Dir, Dropped: ev.Dropped}, nil
}

func (a *agentWatch) Close() error { return a.w.Close() }
