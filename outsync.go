package boxrun

// Durability of finished output logs.
//
// An exec's exit commits with its log's size before the log is on disk
// (synced = 0 in exec_output); a background syncer fdatasyncs finished logs
// in batches and then marks them synced. The exit of a big exec then does
// not wait for the disk to absorb all its output (on this project's hosts
// that wait was most of the persisted-output time), and small execs do not
// each wait for an fdatasync.
//
// What each kind of crash leaves:
//   - the server process dies: the page cache holds everything written, so
//     every committed size is whole; Open finds the unsynced logs, checks
//     them (below) and syncs them;
//   - the machine loses power: SQLite itself (WAL, synchronous=NORMAL) may
//     lose its last commits, and a log's unsynced tail may be lost or torn.
//     Open scans each log still marked unsynced up to its committed size
//     and keeps the prefix of whole, CRC-valid records (as recovery of a
//     running exec does), recording that size. Replay then returns exactly
//     that prefix and the exit event, never an error or a torn record.
//
// Close syncs every finished log before it closes the database.

import (
	"context"
	"errors"
	"io"
	"os"
)

// syncItem is a finished log waiting for its fdatasync.
type syncItem struct {
	execID string
	f      *os.File
}

// syncLater hands the finished, still open log of execID to the syncer
// (which closes f).
func (m *Manager) syncLater(execID string, f *os.File) {
	m.syncMu.Lock()
	m.syncQ = append(m.syncQ, syncItem{execID, f})
	m.syncMu.Unlock()
	select {
	case m.syncWake <- struct{}{}:
	default:
	}
}

// syncer syncs finished logs until the Manager closes (Close syncs what
// is left).
func (m *Manager) syncer() {
	defer m.wg.Done()
	for {
		select {
		case <-m.syncWake:
			m.syncPending()
		case <-m.ctx.Done():
			return
		}
	}
}

// syncPending fdatasyncs and closes every queued log, then marks the ones
// that synced in one transaction. A log that failed to sync stays unsynced
// in the database: the next Open checks it.
func (m *Manager) syncPending() {
	m.syncRun.Lock() // one batch at a time: marks follow their syncs
	defer m.syncRun.Unlock()
	m.syncMu.Lock()
	q := m.syncQ
	m.syncQ = nil
	m.syncMu.Unlock()
	if len(q) == 0 {
		return
	}
	ids := make([]string, 0, len(q))
	for _, it := range q {
		err := it.f.Sync()
		if cerr := it.f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			m.log.Error("exec: sync output log", "exec", it.execID, "err", err)
			continue
		}
		ids = append(ids, it.execID)
	}
	if err := m.store.markSynced(context.WithoutCancel(m.ctx), ids); err != nil {
		m.log.Error("exec: mark output logs synced", "err", err)
	}
}

// repairLogs checks the logs of finished execs that were not known to be
// on disk when the last Manager stopped: each keeps its prefix of whole,
// valid records up to its committed size, is synced, and is marked synced
// with that size.
func (m *Manager) repairLogs(ctx context.Context) error {
	logs, err := m.store.unsyncedLogs(ctx)
	if err != nil {
		return err
	}
	for id, size := range logs {
		valid, err := validLogPrefix(outLogPath(m.outDir, id), id, size)
		if err != nil {
			return err
		}
		if valid < size {
			m.log.Warn("recover: output log lost its unsynced tail", "exec", id, "committed", size, "kept", valid)
		}
		if err := m.store.repairOutput(ctx, id, valid); err != nil {
			return err
		}
	}
	return nil
}

// validLogPrefix returns the end of the last whole, valid record of the
// log at path within limit bytes, truncating anything after it and
// syncing the file. A missing log has none.
func validLogPrefix(path, execID string, limit int64) (int64, error) {
	r, err := openLogReader(path, execID, limit)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for {
		if _, err := r.next(-1); err != nil {
			if err != io.EOF && !errors.Is(err, errBadRecord) {
				r.close()
				return 0, err
			}
			break
		}
	}
	valid := r.off
	r.close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > valid {
		if err := f.Truncate(valid); err != nil {
			return 0, err
		}
	}
	return valid, f.Sync()
}
