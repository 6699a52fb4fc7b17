package boxrun

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// File watches. A watch is the Manager's: it starts with the first Watch
// call, keeps the last WatchBacklog events in memory (so a reader that
// reconnects resumes by WatchID and seq), and lives on for WatchLinger after
// its last reader left. The driver bounds what the box side holds; this
// side holds at most WatchBacklog events per watch and MaxWatchesPerBox
// watches per box, so a box flooding changes costs the host a bounded
// amount of memory whatever the readers do.

// fileWatch is one watch of a path in a box.
type fileWatch struct {
	id, boxID, path string
	recursive       bool
	fw              sandbox.FileWatch
	cancel          context.CancelFunc

	mu      sync.Mutex
	evs     []FileEvent // the last WatchBacklog changes, oldest first
	next    int64       // Seq of the next change
	done    bool        // no more changes will come
	readers int
	linger  *time.Timer
	wake    chan struct{} // closed (and replaced) when evs or done change
}

// maxWatchPath bounds the path of a watch.
const maxWatchPath = 4096

// Watch calls fn with the events of a file watch on path (absolute; a file
// or a directory) inside a running box: a FileWatchReady event first (Seq 0,
// naming the watch), then every change in order with Seq 1, 2, …. It
// returns nil when the watch ended (the box stopped or the path was
// removed), ctx's error when ctx ends, or fn's error. With opts.WatchID it
// resumes that watch after opts.AfterSeq instead of starting one; changes
// no longer held are reported as one FileOverflow event. Errors:
// BOX_NOT_FOUND, BOX_NOT_RUNNING, FILE_NOT_FOUND (no such path, or an
// unknown or expired watch), VALIDATION_ERROR, RESOURCE_EXCEEDED (the box
// has MaxWatchesPerBox watches), RUNTIME_ERROR (the driver cannot watch).
func (m *Manager) Watch(ctx context.Context, box, path string, opts WatchOptions, fn func(FileEvent) error) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return err
	}
	var w *fileWatch
	if opts.WatchID != "" {
		m.fwMu.Lock()
		w = m.fwatches[opts.WatchID]
		if w != nil && (w.boxID != b.ID || (path != "" && path != w.path) || (opts.Recursive && !w.recursive)) {
			w = nil
		}
		if w != nil {
			w.attach()
		}
		m.fwMu.Unlock()
		if w == nil {
			return Errorf(CodeFileNotFound, "Watch '%s' of box '%s' not found (it ended, expired or is of another path)", opts.WatchID, box)
		}
	} else {
		if w, err = m.startWatch(ctx, b, path, opts.Recursive); err != nil {
			return err
		}
	}
	defer m.detachWatch(w)
	after := opts.AfterSeq
	if opts.WatchID == "" || after < 0 {
		after = 0
	}
	if err := fn(FileEvent{WatchID: w.id, Type: FileWatchReady, Path: w.path, Dir: w.recursive, Time: m.now()}); err != nil {
		return err
	}
	for {
		w.mu.Lock()
		var out []FileEvent
		if n := len(w.evs); n > 0 && w.evs[n-1].Seq > after {
			first := w.evs[0].Seq
			if after+1 < first {
				out = append(out, FileEvent{WatchID: w.id, Seq: first - 1, Type: FileOverflow, Dropped: first - 1 - after, Time: m.now()})
				after = first - 1
			}
			out = append(out, w.evs[after+1-first:]...)
		}
		done, wake := w.done, w.wake
		w.mu.Unlock()
		for _, ev := range out {
			if err := fn(ev); err != nil {
				return err
			}
			after = ev.Seq
		}
		if len(out) > 0 {
			continue
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.ctx.Done():
			return nil
		case <-wake:
		}
	}
}

// startWatch starts a watch of path in the running box b and registers it
// with one reader.
func (m *Manager) startWatch(ctx context.Context, b *boxRow, path string, recursive bool) (*fileWatch, error) {
	if path == "" || !strings.HasPrefix(path, "/") || strings.ContainsRune(path, 0) || len(path) > maxWatchPath {
		return nil, Errorf(CodeValidationError, "path must be an absolute path in the box (at most %d bytes, no NUL)", maxWatchPath)
	}
	fwr, ok := m.driver.(sandbox.FileWatcher)
	if !ok {
		return nil, Errorf(CodeRuntimeError, "The %s driver cannot watch files", m.driver.Name())
	}
	if b.Status != StatusRunning || b.Handle == "" {
		return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running (status: %s)", b.ID, b.Status)
	}
	m.fwMu.Lock()
	n := 0
	for _, w := range m.fwatches {
		if w.boxID == b.ID {
			n++
		}
	}
	m.fwMu.Unlock()
	if n >= MaxWatchesPerBox {
		return nil, Errorf(CodeResourceExceeded, "Box '%s' has %d file watches already (the limit)", b.ID, n)
	}
	wctx, cancel := context.WithCancel(m.ctx)
	fw, err := fwr.Watch(wctx, b.Handle, path, recursive)
	if err != nil {
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrNotFound):
			return nil, Errorf(CodeFileNotFound, "Path '%s' not found in box", path)
		case errors.Is(err, ErrInvalid):
			return nil, Errorf(CodeValidationError, "Cannot watch '%s': %w", path, err)
		case errors.Is(err, ErrConflict):
			return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running", b.ID)
		}
		return nil, Errorf(CodeRuntimeError, "Failed to watch '%s' in box '%s': %w", path, b.ID, err)
	}
	w := &fileWatch{
		id: newID("watch_"), boxID: b.ID, path: path, recursive: recursive,
		fw: fw, cancel: cancel, next: 1, readers: 1, wake: make(chan struct{}),
	}
	m.fwMu.Lock()
	if m.fwatches == nil {
		m.fwatches = map[string]*fileWatch{}
	}
	m.fwatches[w.id] = w
	m.fwMu.Unlock()
	m.wg.Add(1)
	go m.pumpWatch(w)
	return w, nil
}

// pumpWatch moves the driver's changes into w until the watch ends.
func (m *Manager) pumpWatch(w *fileWatch) {
	defer m.wg.Done()
	for {
		c, err := w.fw.Next()
		w.mu.Lock()
		if err != nil {
			w.done = true
			if !errors.Is(err, io.EOF) && m.ctx.Err() == nil {
				m.log.Debug("file watch ended", "watch", w.id, "box", w.boxID, "err", err)
			}
		} else {
			w.evs = append(w.evs, FileEvent{
				WatchID: w.id, Seq: w.next, Type: FileEventType(c.Type), Path: c.Path, OldPath: c.OldPath,
				Dir: c.Dir, Dropped: c.Dropped, Time: m.now(),
			})
			w.next++
			if len(w.evs) > WatchBacklog {
				w.evs = append(w.evs[:0:0], w.evs[len(w.evs)-WatchBacklog:]...)
			}
		}
		close(w.wake)
		w.wake = make(chan struct{})
		w.mu.Unlock()
		if err != nil {
			w.fw.Close()
			w.cancel()
			return
		}
	}
}

// attach registers a reader of w. Callers hold m.fwMu.
func (w *fileWatch) attach() {
	w.mu.Lock()
	w.readers++
	if w.linger != nil {
		w.linger.Stop()
		w.linger = nil
	}
	w.mu.Unlock()
}

// detachWatch unregisters a reader of w; the last one leaving starts the
// linger timer that drops the watch.
func (m *Manager) detachWatch(w *fileWatch) {
	m.fwMu.Lock()
	defer m.fwMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.readers--
	if w.readers > 0 {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(m.cfg.watchLinger(), func() {
		m.fwMu.Lock()
		w.mu.Lock()
		stale := w.linger == t && w.readers == 0
		w.mu.Unlock()
		if stale && m.fwatches[w.id] == w {
			delete(m.fwatches, w.id)
		}
		m.fwMu.Unlock()
		if stale {
			w.cancel()
			w.fw.Close()
		}
	})
	w.linger = t
}

// closeWatches ends every watch (Manager.Close).
func (m *Manager) closeWatches() {
	m.fwMu.Lock()
	ws := m.fwatches
	m.fwatches = nil
	m.fwMu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		if w.linger != nil {
			w.linger.Stop()
		}
		w.mu.Unlock()
		w.cancel()
		w.fw.Close()
	}
}

// watchCount reports the watches the Manager holds (for metrics and tests).
func (m *Manager) watchCount() int {
	m.fwMu.Lock()
	defer m.fwMu.Unlock()
	return len(m.fwatches)
}
