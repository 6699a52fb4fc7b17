package boxrun

import (
	"context"
	"errors"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// Sampling window of a one-shot Stats.
const (
	// statsWindow is how far apart the two samples of a one-shot Stats are
	// when no recent sample exists.
	statsWindow = 250 * time.Millisecond
)

// cpuSample is the last CPU reading of a box, for the next sample's rate.
type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// Stats samples the resource use of a running box. CPUCores is computed
// against the box's previous sample when one is at most 10 s old (an open
// StatsStream keeps one), else from two readings statsWindow apart.
// Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING, RUNTIME_ERROR (the driver cannot
// measure boxes).
func (m *Manager) Stats(ctx context.Context, box string) (*Stats, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	st, ok := m.driver.(sandbox.Statser)
	if !ok {
		return nil, Errorf(CodeRuntimeError, "The %s driver does not report box stats", m.driver.Name())
	}
	if b.Status != StatusRunning || b.Handle == "" {
		return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running (status: %s)", box, b.Status)
	}
	m.statsMu.Lock()
	prev, havePrev := m.cpuSamples[b.ID]
	m.statsMu.Unlock()
	if !havePrev || m.now().Sub(prev.at) > 10*time.Second {
		if _, err := m.sample(ctx, st, b); err != nil {
			return nil, err
		}
		t := time.NewTimer(statsWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return m.sample(ctx, st, b)
}

// sample reads the driver once and turns the reading into Stats, using and
// updating the box's previous CPU reading.
func (m *Manager) sample(ctx context.Context, st sandbox.Statser, b *boxRow) (*Stats, error) {
	raw, err := st.Stats(ctx, b.Handle)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running", b.ID)
		}
		return nil, Errorf(CodeRuntimeError, "Failed to read stats of box '%s': %w", b.ID, err)
	}
	now := m.now()
	s := &Stats{
		BoxID: b.ID, Time: now, CPUTimeNS: int64(raw.CPUTime),
		MemoryBytes: raw.MemoryBytes, MemoryPeakBytes: raw.MemoryPeakBytes, MemoryLimitBytes: raw.MemoryLimitBytes,
		Processes: raw.Processes, DiskBytes: raw.DiskBytes, NetRxBytes: raw.NetRxBytes, NetTxBytes: raw.NetTxBytes,
	}
	if s.MemoryLimitBytes <= 0 {
		s.MemoryLimitBytes = b.MemoryMB << 20
	}
	m.statsMu.Lock()
	prev, ok := m.cpuSamples[b.ID]
	m.cpuSamples[b.ID] = cpuSample{at: now, cpu: raw.CPUTime}
	m.lastStats[b.ID] = *s
	m.statsMu.Unlock()
	if ok && now.After(prev.at) && raw.CPUTime >= prev.cpu {
		s.CPUCores = float64(raw.CPUTime-prev.cpu) / float64(now.Sub(prev.at))
		m.statsMu.Lock()
		m.lastStats[b.ID] = *s
		m.statsMu.Unlock()
	}
	return s, nil
}

// forgetStats drops what the Manager keeps of a box's samples (on stop and
// remove), so that the metrics of a removed box go away.
func (m *Manager) forgetStats(boxID string) {
	m.statsMu.Lock()
	delete(m.cpuSamples, boxID)
	delete(m.lastStats, boxID)
	m.statsMu.Unlock()
}

// StatsStream calls fn with a sample of the box every opts.Interval until
// the box stops (it then returns nil), ctx ends, or fn fails (its error is
// returned). The first sample comes at once, with CPUCores over a short
// window. Errors: those of Stats.
func (m *Manager) StatsStream(ctx context.Context, box string, opts StatsOptions, fn func(*Stats) error) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	interval := opts.Interval
	if interval == 0 {
		interval = DefaultStatsInterval
	}
	interval = max(interval, MinStatsInterval)
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return err
	}
	// Subscribe first: a stop after the first sample still ends the stream.
	sub, err := m.Subscribe(ctx, EventFilter{BoxID: b.ID, Types: []EventType{EventBoxStopped, EventBoxRemoved, EventBoxError, EventBoxExpired}})
	if err != nil {
		return err
	}
	defer sub.Close()
	s, err := m.Stats(ctx, b.ID)
	if err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := fn(s); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-sub.C():
			if !ok && sub.Err() != nil && ctx.Err() == nil && !errors.Is(sub.Err(), ErrClosed) {
				return sub.Err()
			}
			return nil // stopped, removed or expired (or the Manager closed)
		case <-t.C:
		}
		st, _ := m.driver.(sandbox.Statser)
		cur, err := m.store.getBox(ctx, b.ID)
		if err != nil {
			if ErrorCode(err) == CodeBoxNotFound {
				return nil
			}
			return err
		}
		if cur.Status != StatusRunning {
			return nil
		}
		if s, err = m.sample(ctx, st, cur); err != nil {
			if ErrorCode(err) == CodeBoxNotRunning {
				return nil
			}
			return err
		}
	}
}
