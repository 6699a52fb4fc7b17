package sandbox

import "context"

// FileChange is one change a FileWatch reports. Type is one of "created",
// "modified", "removed", "renamed" (OldPath → Path) and "overflow"
// (Dropped changes were lost; no path).
type FileChange struct {
	Type    string
	Path    string
	OldPath string
	Dir     bool
	Dropped int64
}

// FileWatch is a running watch (FileWatcher.Watch).
type FileWatch interface {
	// Next blocks until the next change. It returns io.EOF when the watched
	// path was removed (after reporting it) and another error when the
	// watch broke (the sandbox stopped, the agent misbehaved). Only one
	// goroutine calls Next.
	Next() (FileChange, error)
	// Close ends the watch and makes a blocked Next return. It is
	// idempotent and safe to call concurrently with Next.
	Close() error
}

// FileWatcher is implemented by drivers that can watch paths inside a
// running sandbox (inotify in the in-box agent). The Manager type-asserts
// it; without it, boxrun.Manager.Watch fails with RUNTIME_ERROR. The
// driver bounds what one watch holds in memory: a box producing changes
// faster than they are read loses some, reported as an "overflow" change.
// A missing path is an error wrapping boxapi.ErrNotFound; a sandbox that is
// not running one wrapping boxapi.ErrConflict.
type FileWatcher interface {
	Watch(ctx context.Context, handle, path string, recursive bool) (FileWatch, error)
}
