package agentexec

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Watch follows the absolute, clean path p in the box with the agent's
// inotify (see agentproto.Watcher). ctx bounds the whole watch. Errors are
// mapped like CopyIn's: a missing path wraps boxapi.ErrNotFound, a bad
// one boxapi.ErrInvalid, a broken connection boxapi.ErrRuntime (reported
// to Broken).
func (a *Agent) Watch(ctx context.Context, p string, recursive bool) (sandbox.FileWatch, error) {
	w, err := a.Conn.Watch(ctx, p, recursive)
	if err != nil {
		return nil, a.opErr(ctx, "watch", p, err)
	}
	return NewWatch(a.Name, w, a.Broken), nil
}

// List returns the entries of the absolute, clean directory dir in the
// box and whether there are more than the agent sends (see
// sandbox.Lister). Errors are mapped like Watch's.
func (a *Agent) List(ctx context.Context, dir string) ([]boxapi.FileEntry, bool, error) {
	ents, more, err := a.Conn.List(ctx, dir)
	if err != nil {
		return nil, false, a.opErr(ctx, "list", dir, err)
	}
	return agentproto.FileEntries(ents), more, nil
}

// NewWatch adapts the agent watch w to a sandbox.FileWatch whose errors
// are prefixed with name ("gvisor", "qemu"). broken, when set, is called
// with an error wrapping agentproto.ErrProtocol when the agent sent a
// change that is not well-formed (the driver drops the connection).
func NewWatch(name string, w *agentproto.Watcher, broken func(error)) sandbox.FileWatch {
	return &fileWatch{name: name, w: w, broken: broken}
}

// fileWatch is a sandbox.FileWatch over an agentproto.Watcher.
type fileWatch struct {
	name   string
	w      *agentproto.Watcher
	broken func(error)
}

func (f *fileWatch) Next() (sandbox.FileChange, error) {
	ev, err := f.w.Next()
	if err != nil {
		if errors.Is(err, agentproto.ErrProtocol) && f.broken != nil {
			f.broken(err)
		}
		if errors.Is(err, io.EOF) {
			return sandbox.FileChange{}, io.EOF
		}
		return sandbox.FileChange{}, fmt.Errorf("%s: watch: %w", f.name, err)
	}
	return sandbox.FileChange{Type: ev.Type, Path: ev.Path, OldPath: ev.OldPath, Dir: ev.Dir, Dropped: ev.Dropped}, nil
}

func (f *fileWatch) Close() error { return f.w.Close() }
