package agentproto

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/hashicorp/yamux"
)

// File watch (OpWatch). The host sends a Request with Path (absolute) and
// Recursive; the agent answers with a Result (the watch is set up, or an
// error: KindNotFound for a missing path) and then one FrameEvent per
// change until the host closes the stream. The agent closes the stream
// after reporting that the watched path itself was removed.
//
// The agent queues at most WatchQueue changes; when the host reads too
// slowly (or the box changes files faster than the stream carries them),
// it drops changes and reports how many in one WatchOverflow event before
// the next change it sends.

// WatchQueue bounds the changes an agent holds for one watch.
const WatchQueue = 4096

// MaxWatchEvent bounds the payload of one FrameEvent; MaxWatchPath the
// length of a path in it.
const (
	MaxWatchEvent = 16 << 10
	MaxWatchPath  = 4096
)

// Change types of a WatchEvent.
const (
	WatchCreated  = "created"
	WatchModified = "modified"
	WatchRemoved  = "removed"
	WatchRenamed  = "renamed"  // OldPath → Path
	WatchOverflow = "overflow" // Dropped changes were lost
)

// WatchEvent is one change inside a watched path.
type WatchEvent struct {
	Type    string `json:"type"`
	Path    string `json:"path,omitempty"`     // absolute, inside the watched path
	OldPath string `json:"old_path,omitempty"` // renamed: where it was
	Dir     bool   `json:"dir,omitempty"`      // the path is a directory
	Dropped int64  `json:"dropped,omitempty"`  // overflow: how many changes were lost
}

// Watcher reads the changes of one watch (Conn.Watch). Next and Close may
// be called from different goroutines.
type Watcher struct {
	st      *yamux.Stream
	release func() bool
	root    string
}

// Watch starts watching path (absolute) inside the box, with recursive
// every directory below it too. It returns once the agent reports the
// watch set up; an error the agent reports is a *RemoteError (Kind
// KindNotFound: no such path). ctx bounds the whole watch: when it ends,
// the stream is closed.
func (c *Conn) Watch(ctx context.Context, p string, recursive bool) (*Watcher, error) {
	st, release, err := c.Open(ctx, &Request{Op: OpWatch, Path: p, Recursive: recursive})
	if err != nil {
		return nil, err
	}
	if _, err := readResult(st, OpWatch); err != nil {
		release()
		st.Close()
		return nil, ctxErr(ctx, err)
	}
	return &Watcher{st: st, release: release, root: path.Clean(p)}, nil
}

// Next returns the next change. It returns io.EOF once the agent ended the
// watch (the watched path was removed), an error wrapping ErrProtocol for
// a frame that is not a well-formed change inside the watched path, and
// the stream's error when the connection or the watch was closed.
func (w *Watcher) Next() (WatchEvent, error) {
	var ev WatchEvent
	typ, payload, err := ReadFrame(w.st)
	if err != nil {
		return ev, err
	}
	if typ != FrameEvent {
		return ev, fmt.Errorf("agent watch: frame type %d instead of an event: %w", typ, ErrProtocol)
	}
	if len(payload) > MaxWatchEvent {
		return ev, fmt.Errorf("agent watch: event of %d bytes: %w", len(payload), ErrProtocol)
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return ev, fmt.Errorf("agent watch: bad event: %v: %w", err, ErrProtocol)
	}
	if err := w.check(&ev); err != nil {
		return WatchEvent{}, err
	}
	return ev, nil
}

// check validates an event from the (hostile) agent.
func (w *Watcher) check(ev *WatchEvent) error {
	bad := func(why string) error {
		return fmt.Errorf("agent watch: %s: %w", why, ErrProtocol)
	}
	switch ev.Type {
	case WatchOverflow:
		if ev.Dropped <= 0 || ev.Path != "" || ev.OldPath != "" {
			return bad("malformed overflow event")
		}
		return nil
	case WatchRenamed:
		if !w.inside(ev.OldPath) {
			return bad("renamed event without a valid old path")
		}
	case WatchCreated, WatchModified, WatchRemoved:
		if ev.OldPath != "" {
			return bad("old path on a " + ev.Type + " event")
		}
	default:
		return bad(fmt.Sprintf("unknown change type %q", ev.Type))
	}
	if ev.Dropped != 0 {
		return bad("dropped count on a " + ev.Type + " event")
	}
	if !w.inside(ev.Path) {
		return bad("path outside the watched path")
	}
	return nil
}

// inside reports whether p is a clean absolute path of at most
// MaxWatchPath bytes at or below the watched path.
func (w *Watcher) inside(p string) bool {
	if p == "" || len(p) > MaxWatchPath || !path.IsAbs(p) || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	return p == w.root || w.root == "/" || strings.HasPrefix(p, w.root+"/")
}

// Close ends the watch; the agent then drops it. It is idempotent.
func (w *Watcher) Close() error {
	w.release()
	return w.st.Close()
}
