package boxrun

import (
	"context"
	"errors"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// JournalForTest journals a box.stopped event for boxID without publishing
// it, so tests can publish committed events in any order.
func JournalForTest(ctx context.Context, m *Manager, boxID string) (Event, error) {
	var ev Event
	err := m.store.write(ctx, func(conn *sqlite.Conn) (err error) {
		ev, err = appendJournal(conn, FormatTime(m.now()), journalEntry{Type: EventBoxStopped, BoxID: boxID})
		return err
	})
	return ev, err
}

// PublishForTest publishes ev on the Manager's bus.
func PublishForTest(m *Manager, ev Event) { m.bus.publish(ev) }

// LegacyOutputForTest stores n output events of size bytes each for execID
// in the events table, as an older version (or the reference server) did,
// so tests can grow the database the way an output flood used to.
func LegacyOutputForTest(ctx context.Context, m *Manager, execID string, n, size int) error {
	data := strings.Repeat("y\n", size/2)
	now := FormatTime(m.now())
	return m.store.write(ctx, func(conn *sqlite.Conn) error {
		for i := range n {
			err := sqlitex.Execute(conn, "INSERT INTO events(exec_id, seq, type, stream, data, created_at) VALUES (?, ?, 'log', 'stdout', ?, ?);",
				&sqlitex.ExecOptions{Args: []any{execID, 1_000_000 + i, data, now}})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// PragmaForTest returns the integer result of a PRAGMA on the Manager's
// database (in a read transaction, so the connection sees the current file
// header).
func PragmaForTest(ctx context.Context, m *Manager, q string) (v int64, err error) {
	err = m.store.read(ctx, func(conn *sqlite.Conn) error {
		for _, q := range []string{"BEGIN;", "SELECT COUNT(*) FROM sqlite_master;"} {
			if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
				return err
			}
		}
		v, err = pragmaInt(conn, q)
		return errors.Join(err, sqlitex.ExecuteTransient(conn, "COMMIT;", nil))
	})
	return v, err
}

// JournalLenForTest counts the journal's entries.
func JournalLenForTest(ctx context.Context, m *Manager) (n int64, err error) {
	err = m.store.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT COUNT(*) FROM journal;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
		})
	})
	return n, err
}

// MaintainForTest runs one round of journal retention and space reclaim.
func MaintainForTest(ctx context.Context, m *Manager) error { return m.maintain(ctx) }

// CheckpointForTest checkpoints the WAL into the database file.
func CheckpointForTest(ctx context.Context, m *Manager) error {
	return m.store.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.ExecuteTransient(conn, "PRAGMA wal_checkpoint(TRUNCATE);", nil)
	})
}

// OutputSyncForTest returns the committed size of an exec's output log and
// whether it is marked synced.
func OutputSyncForTest(ctx context.Context, m *Manager, execID string) (size int64, synced bool, err error) {
	err = m.store.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT size, synced FROM exec_output WHERE exec_id = ?;", &sqlitex.ExecOptions{
			Args: []any{execID},
			ResultFunc: func(stmt *sqlite.Stmt) error {
				size, synced = stmt.ColumnInt64(0), stmt.ColumnInt64(1) != 0
				return nil
			},
		})
	})
	return size, synced, err
}

// MarkUnsyncedForTest marks an exec's output log as not known to be on
// disk, as a crash before the background sync leaves it.
func MarkUnsyncedForTest(ctx context.Context, m *Manager, execID string) error {
	return m.store.write(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "UPDATE exec_output SET synced = 0 WHERE exec_id = ?;", &sqlitex.ExecOptions{Args: []any{execID}})
	})
}
