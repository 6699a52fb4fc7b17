package boxrun

import (
	"context"
	"encoding/json"
)

// ExecEvents calls fn with every output event of an exec whose Seq is
// greater than afterSeq (-1 for all), in seq order and each exactly once:
// first the stored ones, then live ones as they happen. It returns nil after
// the exit event, or the first error from fn, ctx or the store. It works the
// same during and long after the exec (events are kept until the box is
// removed); an exec that ended without an exit event (a database from an
// older server) gets a synthesized one. Errors: EXEC_NOT_FOUND.
func (m *Manager) ExecEvents(ctx context.Context, execID string, afterSeq int64, fn func(ExecEvent) error) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	if _, err := m.store.getExec(ctx, execID); err != nil {
		return err
	}
	last := afterSeq
	emit := func(ev ExecEvent) (bool, error) {
		if ev.Seq <= last {
			return false, nil
		}
		last = ev.Seq
		return ev.Kind == KindExit, fn(ev)
	}
	for {
		// Subscribe before reading the store: an event stored after the
		// read is then published to us, and one published before we
		// subscribed was stored before the read.
		sub := m.bus.subscribeExec(execID, 1024)
		done, err := m.replay(ctx, execID, &last, emit)
		if done || err != nil {
			m.bus.unsubscribeExec(execID, sub)
			return err
		}
		e, err := m.store.getExec(ctx, execID)
		if err != nil {
			m.bus.unsubscribeExec(execID, sub)
			return err
		}
		if e.Status != ExecRunning {
			m.bus.unsubscribeExec(execID, sub)
			// The exit event commits with the status; read once more in
			// case it landed between the replay and the status read.
			if done, err := m.replay(ctx, execID, &last, emit); done || err != nil {
				return err
			}
			if has, err := m.store.hasExit(ctx, execID); has || err != nil {
				return err // the exit event was at or before afterSeq
			}
			data, _ := json.Marshal(ExitInfo{ExitCode: e.ExitCode})
			_, err := emit(ExecEvent{ExecID: execID, Seq: last + 1, Kind: KindExit, Data: string(data), CreatedAt: e.FinishedAt})
			return err
		}
		done, err = m.live(ctx, sub, emit)
		m.bus.unsubscribeExec(execID, sub)
		if done || err != nil {
			return err
		}
		// The live channel closed (exec finished or we fell behind):
		// catch up from the store.
	}
}

// replay emits the stored events of an exec after *last: its output log
// (read record by record, up to what is stored for good), then the events
// table (exit events, and the output of execs stored by older versions) in
// pages. Memory stays bounded whatever the output's size.
func (m *Manager) replay(ctx context.Context, execID string, last *int64, emit func(ExecEvent) (bool, error)) (bool, error) {
	readLog := func() (bool, error) {
		m.mu.Lock()
		r := m.runs[execID]
		m.mu.Unlock()
		size, hasLog := int64(0), true
		if r != nil {
			size = r.written.Load()
		} else {
			var err error
			if size, hasLog, err = m.store.outputSize(ctx, execID); err != nil {
				return false, err
			}
		}
		if !hasLog || size == 0 {
			return false, nil
		}
		return readOutLog(outLogPath(m.outDir, execID), execID, size, *last, emit)
	}
	if done, err := readLog(); done || err != nil {
		return done, err
	}
	const page = 256
	for {
		evs, err := m.store.listEvents(ctx, execID, *last, page)
		if err != nil {
			return false, err
		}
		for _, ev := range evs {
			if ev.Seq > *last+1 {
				// The exit row commits after the log's last write: output
				// written since the log was read comes before it.
				if done, err := readLog(); done || err != nil {
					return done, err
				}
			}
			done, err := emit(ev)
			if done || err != nil {
				return done, err
			}
		}
		if len(evs) < page {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

func (m *Manager) live(ctx context.Context, sub *execSub, emit func(ExecEvent) (bool, error)) (bool, error) {
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				return false, nil
			}
			done, err := emit(ev)
			if done || err != nil {
				return done, err
			}
		case <-ctx.Done():
			return false, ctx.Err()
		case <-m.ctx.Done():
			return false, ErrClosed
		}
	}
}
