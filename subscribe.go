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
	start  int64      // without Replay: the last journal seq when subscribed
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
	if !filter.Replay {
		// Live only: everything committed up to now is the past. Anything
		// committed later is published after this read, so it reaches us.
		seq, err := m.store.lastJournalSeq(ctx)
		if err != nil {
			m.bus.removeSub(s)
			cancel()
			return nil, err
		}
		s.start = seq
	}
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

// run delivers journaled events in seq order, each once. Journal seqs are
// assigned in commit order, but live events are published after their
// commit by concurrent goroutines, so they can arrive out of order. The
// subscription keeps a watermark: every matching event with a seq at or
// below it has been delivered. A live event above watermark+1 means a gap:
// the events in between are committed (they have lower seqs), so they are
// read from the journal and delivered first; the ones that arrive live
// later are then below the watermark and skipped. Events without a seq
// (output, pull progress) pass through as they come.
func (s *subscription) run(ctx context.Context) error {
	var mark int64
	if s.filter.Replay {
		mark = s.filter.AfterSeq
		for {
			f := s.filter
			f.AfterSeq = mark
			evs, err := s.m.store.journal(ctx, f, 0, 500)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				mark = ev.Seq
				if !matchEvent(s.filter, ev) {
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
	} else {
		mark = s.start
	}
	for {
		select {
		case ev, ok := <-s.live:
			if !ok {
				s.m.bus.mu.Lock()
				lagged := s.lagged
				s.m.bus.mu.Unlock()
				if lagged {
					return fmt.Errorf("subscriber fell behind (resume with Replay after seq %d): %w", mark, ErrCanceled)
				}
				return ErrClosed
			}
			if ev.Seq == 0 {
				if err := s.send(ctx, ev); err != nil {
					return err
				}
				continue
			}
			if ev.Seq <= mark {
				continue // delivered already (replayed or gap-filled)
			}
			if ev.Seq > mark+1 {
				if err := s.fill(ctx, mark, ev.Seq); err != nil {
					return err
				}
			}
			mark = ev.Seq
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

// fill delivers the matching journaled events with after < seq < before.
func (s *subscription) fill(ctx context.Context, after, before int64) error {
	for after < before-1 {
		f := s.filter
		f.AfterSeq = after
		evs, err := s.m.store.journal(ctx, f, before, 500)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			after = ev.Seq
			if !matchEvent(s.filter, ev) {
				continue
			}
			if err := s.send(ctx, ev); err != nil {
				return err
			}
		}
		if len(evs) < 500 {
			return nil
		}
	}
	return nil
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
