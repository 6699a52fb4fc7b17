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
// against the box's previous sample when one is between minCPUWindow and
// 10 s old (an open StatsStream keeps one), else from two readings
// statsWindow apart. Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING, RUNTIME_ERROR
// (the driver cannot measure boxes).
func (m *Manager) Stats(ctx context.Context, box string) (*Stats, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	s, _, err := m.stats(ctx, box)
	return s, err
}

// minCPUWindow is the shortest interval CPUCores is computed over: CPU
// counters advance in ticks, so a shorter one (two readers sampling one
// box moments apart) would turn a tick into hundreds of cores.
const minCPUWindow = 100 * time.Millisecond

// stats is Stats, also returning the reading CPUCores of a next sample is
// computed against.
func (m *Manager) stats(ctx context.Context, box string) (*Stats, cpuSample, error) {
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, cpuSample{}, err
	}
	st, ok := m.driver.(sandbox.Statser)
	if !ok {
		return nil, cpuSample{}, Errorf(CodeRuntimeError, "The %s driver does not report box stats", m.driver.Name())
	}
	if b.Status != StatusRunning || b.Handle == "" {
		return nil, cpuSample{}, Errorf(CodeBoxNotRunning, "Box '%s' is not running (status: %s)", box, b.Status)
	}
	m.statsMu.Lock()
	prev, havePrev := m.cpuSamples[b.ID]
	m.statsMu.Unlock()
	if age := m.now().Sub(prev.at); !havePrev || age > 10*time.Second || age < minCPUWindow {
		_, first, err := m.sample(ctx, st, b, nil)
		if err != nil {
			return nil, cpuSample{}, err
		}
		t := time.NewTimer(statsWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, cpuSample{}, ctx.Err()
		case <-t.C:
		}
		prev = first
	}
	return m.sample(ctx, st, b, &prev)
}

// sample reads the driver once and turns the reading into Stats, with
// CPUCores over the time since prev (the caller's previous reading; none
// or one less than minCPUWindow old: CPUCores 0). It returns the new
// reading, which is also kept as the box's latest (for Stats and metrics).
func (m *Manager) sample(ctx context.Context, st sandbox.Statser, b *boxRow, prev *cpuSample) (*Stats, cpuSample, error) {
	raw, err := st.Stats(ctx, b.Handle)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return nil, cpuSample{}, Errorf(CodeBoxNotRunning, "Box '%s' is not running", b.ID)
		}
		return nil, cpuSample{}, Errorf(CodeRuntimeError, "Failed to read stats of box '%s': %w", b.ID, err)
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
	if prev != nil && now.Sub(prev.at) >= minCPUWindow && raw.CPUTime >= prev.cpu {
		s.CPUCores = float64(raw.CPUTime-prev.cpu) / float64(now.Sub(prev.at))
	}
	cur := cpuSample{at: now, cpu: raw.CPUTime}
	m.statsMu.Lock()
	if p, ok := m.cpuSamples[b.ID]; !ok || !p.at.After(now) {
		m.cpuSamples[b.ID] = cur
		m.lastStats[b.ID] = *s
	}
	m.statsMu.Unlock()
	return s, cur, nil
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
	// Each stream computes CPUCores against its own previous reading, so
	// other readers of the box do not shorten its window.
	s, prev, err := m.stats(ctx, b.ID)
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
		if s, prev, err = m.sample(ctx, st, cur, &prev); err != nil {
			if ErrorCode(err) == CodeBoxNotRunning {
				return nil
			}
			return err
		}
	}
}
