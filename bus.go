package boxrun

import "sync"

// bus fans events out to live subscribers. Publishing never blocks: a
// subscriber whose buffer is full is dropped (its channel closed); it
// resumes from SQLite, which holds every event.
type bus struct {
	mu    sync.Mutex
	execs map[string]map[*execSub]struct{} // exec ID → output subscribers
	subs  map[*subscription]struct{}       // Manager event subscribers
}

func newBus() *bus {
	return &bus{execs: map[string]map[*execSub]struct{}{}, subs: map[*subscription]struct{}{}}
}

// execSub receives the live output events of one exec.
type execSub struct {
	ch     chan ExecEvent
	closed bool // ch is closed: the exec finished or the subscriber fell behind
}

func (b *bus) subscribeExec(execID string, buf int) *execSub {
	s := &execSub{ch: make(chan ExecEvent, buf)}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.execs[execID]
	if m == nil {
		m = map[*execSub]struct{}{}
		b.execs[execID] = m
	}
	m[s] = struct{}{}
	return s
}

func (b *bus) unsubscribeExec(execID string, s *execSub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.execs[execID]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(b.execs, execID)
		}
	}
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// publishExec delivers ev to the exec's subscribers.
func (b *bus) publishExec(ev ExecEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.execs[ev.ExecID] {
		select {
		case s.ch <- ev:
		default:
			s.closed = true
			close(s.ch)
			delete(b.execs[ev.ExecID], s)
		}
	}
}

// wantsOutput reports whether an output event of the exec would reach
// anyone: an output subscriber of the exec, or a Manager subscriber whose
// filter takes exec output of the box. A subscriber added after this
// returns false replays the stored output (stored before the check).
func (b *bus) wantsOutput(execID, boxID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.execs[execID]) > 0 {
		return true
	}
	ev := Event{Type: EventExecOutput, BoxID: boxID, ExecID: execID}
	for s := range b.subs {
		if matchEvent(s.filter, ev) {
			return true
		}
	}
	return false
}

// finishExec closes every output subscription of an exec: its stream is over.
func (b *bus) finishExec(execID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.execs[execID] {
		if !s.closed {
			s.closed = true
			close(s.ch)
		}
	}
	delete(b.execs, execID)
}

// publish delivers a Manager event to matching subscribers.
func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !matchEvent(s.filter, ev) {
			continue
		}
		select {
		case s.live <- ev:
		default:
			s.lagged = true
			delete(b.subs, s)
			close(s.live)
		}
	}
}

func (b *bus) addSub(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s] = struct{}{}
}

// removeSub unregisters s and closes its live channel if still open.
func (b *bus) removeSub(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.live)
	}
}

// closeAll ends every subscription (Manager Close).
func (b *bus) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		delete(b.subs, s)
		close(s.live)
	}
	for id, m := range b.execs {
		for s := range m {
			if !s.closed {
				s.closed = true
				close(s.ch)
			}
		}
		delete(b.execs, id)
	}
}

// matchEvent reports whether ev passes filter f.
func matchEvent(f EventFilter, ev Event) bool {
	if f.BoxID != "" && ev.BoxID != f.BoxID {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, t := range f.Types {
		if t == ev.Type {
			return true
		}
	}
	return false
}
