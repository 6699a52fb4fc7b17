//go:build linux

package boxagent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/boxrun/boxrun/agentproto"
	"golang.org/x/sys/unix"
)

// maxWatchDirs bounds the directories one recursive watch follows; a tree
// with more gets an overflow event for what it cannot watch.
const maxWatchDirs = 8192

// renamePairWait is how long a move out of a directory waits for its move
// into another one, to be reported as one rename.
const renamePairWait = 50 * time.Millisecond

const watchMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_EXCL_UNLINK

// watchQueue is the bounded queue between the inotify reader and the
// stream writer of one watch.
type watchQueue struct {
	mu      sync.Mutex
	evs     []agentproto.WatchEvent
	dropped int64
	done    bool // no more events will come
	wake    chan struct{}
}

func (q *watchQueue) push(ev agentproto.WatchEvent) {
	q.mu.Lock()
	if n := len(q.evs); n > 0 && ev.Type == agentproto.WatchModified && q.evs[n-1] == ev {
		q.mu.Unlock()
		return // the same file modified again before the host saw it
	}
	if len(q.evs) >= agentproto.WatchQueue {
		q.dropped++
	} else {
		q.evs = append(q.evs, ev)
	}
	q.mu.Unlock()
	q.nudge()
}

func (q *watchQueue) finish() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	q.nudge()
}

func (q *watchQueue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns what is queued (an overflow event first when changes were
// dropped) and whether the watch is over.
func (q *watchQueue) take() ([]agentproto.WatchEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []agentproto.WatchEvent
	if q.dropped > 0 {
		out = append(out, agentproto.WatchEvent{Type: agentproto.WatchOverflow, Dropped: q.dropped})
		q.dropped = 0
	}
	out = append(out, q.evs...)
	q.evs = nil
	return out, q.done && len(out) == 0
}

// inotifyWatch follows one path with inotify.
type inotifyWatch struct {
	f         *os.File
	root      string
	recursive bool
	dirs      map[int32]string // watch descriptor → directory (or the watched file)
	q         *watchQueue
	rootGone  bool
}

// watch serves agentproto.OpWatch on st.
func watch(st io.ReadWriter, req *agentproto.Request) {
	root := req.Path
	if !filepath.IsAbs(root) || strings.IndexByte(root, 0) >= 0 || len(root) > agentproto.MaxWatchPath {
		agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindInvalid, fmt.Errorf("watch: %q is not an absolute path", root)))
		return
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		agentproto.WriteJSON(st, agentproto.FrameResult, fail(errKind(err), err))
		return
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, fmt.Errorf("watch: inotify: %w", err)))
		return
	}
	w := &inotifyWatch{
		f: os.NewFile(uintptr(fd), "inotify"), root: root, recursive: req.Recursive && fi.IsDir(),
		dirs: map[int32]string{}, q: &watchQueue{wake: make(chan struct{}, 1)},
	}
	defer w.f.Close()
	if err := w.add(root); err != nil {
		agentproto.WriteJSON(st, agentproto.FrameResult, fail(errKind(err), fmt.Errorf("watch %s: %w", root, err)))
		return
	}
	if w.recursive {
		w.addTree(root, false)
	}
	if err := agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{}); err != nil {
		return
	}
	// The host ends the watch by closing the stream: reading it then fails.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, st)
		close(closed)
		w.f.Close() // ends read
	}()
	go w.read()
	for {
		select {
		case <-closed:
			return
		case <-w.q.wake:
		}
		evs, over := w.q.take()
		for _, ev := range evs {
			if err := agentproto.WriteJSON(st, agentproto.FrameEvent, ev); err != nil {
				return
			}
		}
		if over {
			return
		}
	}
}

// add watches one directory (or the watched file).
func (w *inotifyWatch) add(dir string) error {
	if len(w.dirs) >= maxWatchDirs {
		return fmt.Errorf("watch: more than %d directories", maxWatchDirs)
	}
	var wd int
	err := w.control(func(fd int) error {
		var err error
		wd, err = unix.InotifyAddWatch(fd, dir, watchMask)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "watch", Path: dir, Err: err}
	}
	w.dirs[int32(wd)] = dir
	return nil
}

// control runs fn on the inotify descriptor, which stays open meanwhile
// (File.Fd would make it blocking, and Close could reuse it under fn).
func (w *inotifyWatch) control(fn func(fd int) error) error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// addTree watches every directory below dir; with report, it also returns
// what it finds as created events (the tree appeared before its watch did).
func (w *inotifyWatch) addTree(dir string, report bool) (found []agentproto.WatchEvent) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if report && len(found) < agentproto.WatchQueue {
			found = append(found, agentproto.WatchEvent{Type: agentproto.WatchCreated, Path: p, Dir: d.IsDir()})
		} else if report { // more than the queue could hold anyway
			w.q.mu.Lock()
			w.q.dropped++
			w.q.mu.Unlock()
		}
		if d.IsDir() {
			if err := w.add(p); err != nil {
				w.q.mu.Lock()
				w.q.dropped++
				w.q.mu.Unlock()
				return filepath.SkipDir
			}
		}
		return nil
	})
	return found
}

// read turns inotify events into changes until the watch ends.
func (w *inotifyWatch) read() {
	defer w.q.finish()
	buf := make([]byte, 64<<10)
	var pending *pendingMove
	for !w.rootGone {
		if pending != nil {
			_ = w.f.SetReadDeadline(time.Now().Add(renamePairWait))
		} else {
			_ = w.f.SetReadDeadline(time.Time{})
		}
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) && pending != nil {
			// The deadline can pass before the read even looks (a
			// reader descheduled on a busy host): look once more,
			// without waiting, before calling it a move away.
			if n = w.readNow(buf); n == 0 {
				w.movedAway(pending)
				pending = nil
				continue
			}
			err = nil
		}
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameLen := int(raw.Len)
			if off+unix.SizeofInotifyEvent+nameLen > n {
				break
			}
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
			off += unix.SizeofInotifyEvent + nameLen
			pending = w.event(raw.Wd, raw.Mask, raw.Cookie, name, pending)
		}
	}
	if pending != nil {
		w.movedAway(pending)
	}
}

// readNow reads what the inotify descriptor holds at once, without
// waiting and whatever its deadline; 0 when nothing is there.
func (w *inotifyWatch) readNow(buf []byte) int {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if m, err := unix.Read(int(fd), buf); err == nil && m > 0 {
			n = m
		}
	})
	return n
}

// pendingMove is a move out of a directory waiting for its move in.
type pendingMove struct {
	cookie uint32
	path   string
	dir    bool
}

// event handles one inotify event; it returns the move still waiting for
// its pair.
func (w *inotifyWatch) event(wd int32, mask, cookie uint32, name string, pending *pendingMove) *pendingMove {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.q.mu.Lock()
		w.q.dropped++
		w.q.mu.Unlock()
		w.q.nudge()
		return pending
	}
	base, ok := w.dirs[wd]
	if !ok {
		return pending
	}
	p := base
	if name != "" {
		p = filepath.Join(base, name)
	}
	isDir := mask&unix.IN_ISDIR != 0
	if pending != nil && !(mask&unix.IN_MOVED_TO != 0 && cookie == pending.cookie) {
		w.movedAway(pending)
		pending = nil
	}
	switch {
	case mask&unix.IN_IGNORED != 0:
		delete(w.dirs, wd)
		if base == w.root {
			w.rootGone = true
		}
	case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
		if base == w.root {
			w.q.push(agentproto.WatchEvent{Type: agentproto.WatchRemoved, Path: w.root, Dir: w.recursive || isDir})
			w.rootGone = true
		}
	case mask&unix.IN_CREATE != 0:
		w.created(p, isDir)
	case mask&unix.IN_MODIFY != 0:
		w.q.push(agentproto.WatchEvent{Type: agentproto.WatchModified, Path: p, Dir: isDir})
	case mask&unix.IN_DELETE != 0:
		w.q.push(agentproto.WatchEvent{Type: agentproto.WatchRemoved, Path: p, Dir: isDir})
	case mask&unix.IN_MOVED_FROM != 0:
		return &pendingMove{cookie: cookie, path: p, dir: isDir}
	case mask&unix.IN_MOVED_TO != 0:
		if pending != nil {
			w.q.push(agentproto.WatchEvent{Type: agentproto.WatchRenamed, OldPath: pending.path, Path: p, Dir: isDir})
			if isDir && w.recursive {
				w.renameDirs(pending.path, p)
			}
			return nil
		}
		w.created(p, isDir)
	}
	return pending
}

// created reports p as created. A new directory of a recursive watch is
// watched, and what it already holds found, before its event goes out:
// whatever a reader does in it after seeing the event comes from inotify,
// not from the scan (which would report a file moved in as created).
func (w *inotifyWatch) created(p string, isDir bool) {
	var found []agentproto.WatchEvent
	if isDir && w.recursive {
		if err := w.add(p); err == nil {
			found = w.addTree(p, true)
		}
	}
	w.q.push(agentproto.WatchEvent{Type: agentproto.WatchCreated, Path: p, Dir: isDir})
	for _, ev := range found {
		w.q.push(ev)
	}
}

// movedAway reports a move out of the watched tree as a removal.
func (w *inotifyWatch) movedAway(m *pendingMove) {
	w.q.push(agentproto.WatchEvent{Type: agentproto.WatchRemoved, Path: m.path, Dir: m.dir})
	if m.dir && w.recursive {
		for wd, d := range w.dirs {
			if d == m.path || strings.HasPrefix(d, m.path+"/") {
				_ = w.control(func(fd int) error {
					_, err := unix.InotifyRmWatch(fd, uint32(wd))
					return err
				})
				delete(w.dirs, wd)
			}
		}
	}
}

// renameDirs updates the watched directories below a renamed one.
func (w *inotifyWatch) renameDirs(from, to string) {
	for wd, d := range w.dirs {
		if d == from {
			w.dirs[wd] = to
		} else if strings.HasPrefix(d, from+"/") {
			w.dirs[wd] = to + d[len(from):]
		}
	}
}
