package boxrun

import (
	"context"
	"fmt"
	"sync"
)

// subscription is the Manager's Subscription: a goroutine replays the
// journal when asked, then forwards live events from the bus.
type subscription struct {
	filter EventFilter
	live   chan Event // fed by the bus; closed when dropped or removed
	lagged bool       // set under bus.mu when dropped for being slow

	out       chan Event
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	err       error
	closeOnce sync.Once
	m         *Manager
}

// Subscribe streams Manager events matching filter until ctx ends, Close is
// called or the Manager closes. With filter.Replay, journaled events after
// filter.AfterSeq come first, then live ones, without gaps or repeats. A
// subscriber that falls more than the event buffer behind is dropped: C is
// closed and Err wraps ErrCanceled. The caller must call Close.
func (m *Manager) Subscribe(ctx context.Context, filter EventFilter) (Subscription, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	ctx, cancel := context.WithCancel(ctx)
	s := &subscription{
		filter: filter,
		live:   make(chan Event, m.cfg.eventBuffer),
		out:    make(chan Event),
		cancel: cancel,
		done:   make(chan struct{}),
		m:      m,
	}
	m.bus.addSub(s)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(s.done)
		defer close(s.out)
		defer m.bus.removeSub(s)
		s.setErr(s.run(ctx))
	}()
	return s, nil
}

func (s *subscription) run(ctx context.Context) error {
	last := int64(-1)
	if s.filter.Replay {
		last = s.filter.AfterSeq
		for {
			f := s.filter
			f.AfterSeq = last
			evs, err := s.m.store.journal(ctx, f, 500)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				last = ev.Seq
				if !s.filter.match(ev) {
					continue
				}
				if err := s.send(ctx, ev); err != nil {
					return err
				}
			}
			if len(evs) < 500 {
				break
			}
		}
	}
	replayed := last
	for {
		select {
		case ev, ok := <-s.live:
			if !ok {
				s.m.bus.mu.Lock()
				lagged := s.lagged
				s.m.bus.mu.Unlock()
				if lagged {
					return fmt.Errorf("subscriber fell behind (resume with Replay after seq %d): %w", last, ErrCanceled)
				}
				return ErrClosed
			}
			// Journaled events already replayed may arrive again live: skip
			// them. Later live events can come slightly out of seq order
			// (concurrent commits), so only the replayed range is deduped.
			if ev.Seq != 0 && ev.Seq <= replayed {
				continue
			}
			if ev.Seq > last {
				last = ev.Seq
			}
			if err := s.send(ctx, ev); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.m.ctx.Done():
			return ErrClosed
		}
	}
}

func (s *subscription) send(ctx context.Context, ev Event) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.m.ctx.Done():
		return ErrClosed
	}
}

func (s *subscription) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// C returns the event channel; it is closed when the subscription ends.
func (s *subscription) C() <-chan Event { return s.out }

// Err returns why the subscription ended (nil while it runs or after Close).
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == context.Canceled {
		return nil
	}
	return s.err
}

// Close ends the subscription and waits for its goroutine. It is idempotent.
func (s *subscription) Close() error {
	s.closeOnce.Do(s.cancel)
	<-s.done
	return nil
}
