package mcpserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// session is the state of one MCP session: the boxes it owns. Its methods
// are safe for concurrent use (tool calls of one session run concurrently).
type session struct {
	srv    *Server
	ctx    context.Context // canceled when the session closes: ends its calls
	cancel context.CancelFunc

	mu        sync.Mutex
	boxes     map[string]*ownedBox // box ID → state, for boxes this session created
	pending   int                  // creates in flight (count against MaxBoxes)
	closed    bool
	watchOnce sync.Once
	closeOnce sync.Once
	mcpSess   *mcp.ServerSession // set by watch; closed by close
	calls     int                // tool calls in flight
	drained   chan struct{}      // closed when calls drops to 0 after close began
	snaps     map[string]bool    // snapshot IDs this session made (snapshot_tools.go)
}

// beginCall registers a tool call; it returns false once the session is
// closed. endCall must follow a true result.
func (s *session) beginCall() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.calls++
	return true
}

// endCall ends a call registered by beginCall.
func (s *session) endCall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls--
	if s.calls == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// ownedBox is a box created by the session.
type ownedBox struct {
	keep  bool
	timer *time.Timer // lifetime limit; nil without one
}

// errSessionClosed is returned by creates racing the session's end.
var errSessionClosed = boxapi.Errorf(boxapi.CodeCanceled, "The MCP session has ended")

// watch ties the session's cleanup to the end of the MCP session ss: when
// the client goes (HTTP DELETE, idle timeout, stdio EOF), the boxes go.
func (s *session) watch(ss *mcp.ServerSession) {
	if ss == nil {
		return
	}
	s.watchOnce.Do(func() {
		s.mu.Lock()
		s.mcpSess = ss
		closed := s.closed
		s.mu.Unlock()
		if closed {
			ss.Close()
			return
		}
		go func() {
			_ = ss.Wait()
			s.close()
		}()
	})
}

// reserve claims a slot for a new box, or fails with RESOURCE_EXCEEDED when
// the session owns MaxBoxes boxes already. release or adopt must follow.
func (s *session) reserve() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSessionClosed
	}
	if max := s.srv.cfg.MaxBoxes; max > 0 && len(s.boxes)+s.pending >= max {
		return boxapi.Errorf(boxapi.CodeResourceExceeded,
			"This session may own at most %d boxes; remove one first (remove_box)", max)
	}
	s.pending++
	return nil
}

// release gives back a slot claimed by reserve whose create failed.
func (s *session) release() {
	s.mu.Lock()
	s.pending--
	s.mu.Unlock()
}

// adopt records a box created in a slot claimed by reserve and starts its
// lifetime timer. If the session ended meanwhile, the box is removed at once
// (unless kept) and adopt fails.
func (s *session) adopt(id string, keep bool) error {
	s.mu.Lock()
	s.pending--
	if s.closed {
		s.mu.Unlock()
		if !keep && !s.srv.cfg.KeepBoxes {
			s.removeBox(id)
		}
		return errSessionClosed
	}
	ob := &ownedBox{keep: keep}
	if d := s.srv.cfg.MaxLifetime; d > 0 {
		ob.timer = time.AfterFunc(d, func() { s.expire(id) })
	}
	s.boxes[id] = ob
	s.mu.Unlock()
	return nil
}

// expire removes a box whose lifetime is up.
func (s *session) expire(id string) {
	s.mu.Lock()
	_, ok := s.boxes[id]
	delete(s.boxes, id)
	s.mu.Unlock()
	if ok {
		s.removeBox(id)
	}
}

// disown forgets a box (after remove_box).
func (s *session) disown(id string) {
	s.mu.Lock()
	if ob, ok := s.boxes[id]; ok {
		if ob.timer != nil {
			ob.timer.Stop()
		}
		delete(s.boxes, id)
	}
	s.mu.Unlock()
}

// owns reports whether the session created box id and still owns it.
func (s *session) owns(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.boxes[id]
	return ok
}

// ownedIDs returns the IDs of the session's boxes.
func (s *session) ownedIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[string]bool, len(s.boxes))
	for id := range s.boxes {
		ids[id] = true
	}
	return ids
}

// resolve turns a box argument (ID or name) into the box, refusing boxes
// the session may not use with BOX_NOT_FOUND (their existence is not
// revealed).
func (s *session) resolve(ctx context.Context, box string) (*boxapi.Box, error) {
	if err := checkBoxArg(box); err != nil {
		return nil, err
	}
	b, err := s.srv.svc.Get(ctx, box)
	if err != nil {
		return nil, err
	}
	if !s.srv.cfg.AllBoxes && !s.owns(b.ID) {
		return nil, boxapi.Errorf(boxapi.CodeBoxNotFound, "Box '%s' not found", box)
	}
	return b, nil
}

// close ends the session: it removes its boxes except kept ones, stops the
// lifetime timers and closes the MCP session if it is still open. It is
// idempotent; every call returns once the removals are done.
func (s *session) close() { s.closeOnce.Do(s.doClose) }

func (s *session) doClose() {
	s.mu.Lock()
	s.closed = true
	var drained chan struct{}
	if s.calls > 0 {
		drained = make(chan struct{})
		s.drained = drained
	}
	var remove []string
	for id, ob := range s.boxes {
		if ob.timer != nil {
			ob.timer.Stop()
		}
		if !ob.keep && !s.srv.cfg.KeepBoxes {
			remove = append(remove, id)
		}
	}
	s.boxes = map[string]*ownedBox{}
	ss := s.mcpSess
	s.mu.Unlock()
	// Cancel the calls in flight (an exec's cancel reaches its process) and
	// wait for them, so nothing outlives the session, not even when the
	// process exits right after Run returns.
	s.cancel()
	if ss != nil {
		ss.Close()
	}
	if drained != nil {
		select {
		case <-drained:
		case <-time.After(cleanupTimeout):
			s.srv.logf("tool calls still running %v after the session ended", cleanupTimeout)
		}
	}
	var wg sync.WaitGroup
	for _, id := range remove {
		wg.Add(1)
		go func() { defer wg.Done(); s.removeBox(id) }()
	}
	wg.Wait()
	s.removeSnapshots()
	s.srv.forget(s)
}

// removeBox force-removes a box, whatever the caller's context: it runs at
// session end, when the request contexts are gone.
func (s *session) removeBox(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := s.srv.svc.Remove(ctx, id, true)
	if err != nil && !errors.Is(err, boxapi.ErrNotFound) {
		s.srv.logf("remove box %s at session end: %v", id, err)
	}
}
