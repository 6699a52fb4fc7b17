package boxrun

import (
	"context"
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

const execColumns = `id, box_id, status, cmd, env, workdir, timeout_ms, exit_code, error_message, created_at, finished_at`

func scanExec(stmt *sqlite.Stmt) *Exec {
	e := &Exec{
		ID:           stmt.ColumnText(0),
		BoxID:        stmt.ColumnText(1),
		Status:       ExecStatus(stmt.ColumnText(2)),
		Workdir:      stmt.ColumnText(5),
		TimeoutMS:    stmt.ColumnInt64(6),
		ErrorMessage: stmt.ColumnText(8),
	}
	if json.Unmarshal([]byte(stmt.ColumnText(3)), &e.Cmd) != nil || e.Cmd == nil {
		e.Cmd = []string{}
	}
	if s := stmt.ColumnText(4); s != "" {
		if json.Unmarshal([]byte(s), &e.Env) != nil {
			e.Env = nil
		}
	}
	if stmt.ColumnType(7) != sqlite.TypeNull {
		code := int(stmt.ColumnInt64(7))
		e.ExitCode = &code
	}
	e.CreatedAt, _ = ParseTime(stmt.ColumnText(9))
	e.FinishedAt, _ = ParseTime(stmt.ColumnText(10))
	return e
}

func findExec(conn *sqlite.Conn, id string) (*Exec, error) {
	var e *Exec
	err := sqlitex.Execute(conn, "SELECT "+execColumns+" FROM execs WHERE id = ?;", &sqlitex.ExecOptions{
		Args:       []any{id},
		ResultFunc: func(stmt *sqlite.Stmt) error { e = scanExec(stmt); return nil },
	})
	return e, err
}

func (s *store) getExec(ctx context.Context, id string) (*Exec, error) {
	var e *Exec
	err := s.read(ctx, func(conn *sqlite.Conn) (err error) {
		e, err = findExec(conn, id)
		return err
	})
	if err == nil && e == nil {
		err = execNotFound(id)
	}
	return e, err
}

func (s *store) listExecs(ctx context.Context, boxID string) ([]*Exec, error) {
	var out []*Exec
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+execColumns+" FROM execs WHERE box_id = ? ORDER BY created_at DESC, rowid DESC;",
			&sqlitex.ExecOptions{
				Args:       []any{boxID},
				ResultFunc: func(stmt *sqlite.Stmt) error { out = append(out, scanExec(stmt)); return nil },
			})
	})
	return out, err
}

// runningExecs returns every exec whose row says running.
func (s *store) runningExecs(ctx context.Context) ([]*Exec, error) {
	var out []*Exec
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+execColumns+" FROM execs WHERE status = 'running';", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { out = append(out, scanExec(stmt)); return nil },
		})
	})
	return out, err
}

// insertExec inserts a running exec (with an exec_output row: its output
// goes to a log file) and journals exec.started.
func (s *store) insertExec(ctx context.Context, e *Exec) (Event, error) {
	var out Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		var timeout any
		if e.TimeoutMS > 0 {
			timeout = e.TimeoutMS
		}
		err := sqlitex.Execute(conn, "INSERT INTO execs("+execColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?);", &sqlitex.ExecOptions{
			Args: []any{e.ID, e.BoxID, string(e.Status), jsonText(e.Cmd, false), jsonText(e.Env, e.Env == nil),
				nullStr(e.Workdir), timeout, nil, nil, FormatTime(e.CreatedAt), nil},
		})
		if err != nil {
			return fmt.Errorf("insert exec: %w", err)
		}
		if err := sqlitex.Execute(conn, "INSERT INTO exec_output(exec_id) VALUES (?);", &sqlitex.ExecOptions{Args: []any{e.ID}}); err != nil {
			return fmt.Errorf("insert exec: %w", err)
		}
		snap := *e
		out, err = appendJournal(conn, FormatTime(e.CreatedAt), journalEntry{Type: EventExecStarted, BoxID: e.BoxID, ExecID: e.ID, Exec: &snap})
		return err
	})
	return out, err
}

func insertEvent(conn *sqlite.Conn, ev ExecEvent) error {
	return sqlitex.Execute(conn, "INSERT INTO events(exec_id, seq, type, stream, data, created_at) VALUES (?,?,?,?,?,?);",
		&sqlitex.ExecOptions{Args: []any{ev.ExecID, ev.Seq, string(ev.Kind), nullStr(ev.Stream), ev.Data, FormatTime(ev.CreatedAt)}})
}

// appendEvents stores output events in one transaction.
func (s *store) appendEvents(ctx context.Context, evs []ExecEvent) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		for _, ev := range evs {
			if err := insertEvent(conn, ev); err != nil {
				return fmt.Errorf("append event: %w", err)
			}
		}
		return nil
	})
}

// finishExec stores the last output events (ending with the exit event),
// the final exec row and the exec.exited journal entry together, so no
// reader ever sees one without the others.
//
// logSize is the committed size of the exec's output log, truncated whether
// output was cut at the exec's cap, synced whether the log is on disk up to
// logSize (otherwise the Manager syncs it later, see markSynced).
func (s *store) finishExec(ctx context.Context, e *Exec, events []ExecEvent, logSize int64, truncated, synced bool) (Event, error) {
	var out Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		var code any
		if e.ExitCode != nil {
			code = *e.ExitCode
		}
		err := sqlitex.Execute(conn, "UPDATE execs SET status=?, exit_code=?, error_message=?, finished_at=? WHERE id=?;",
			&sqlitex.ExecOptions{Args: []any{string(e.Status), code, nullStr(e.ErrorMessage), FormatTime(e.FinishedAt), e.ID}})
		if err != nil {
			return fmt.Errorf("finish exec: %w", err)
		}
		if conn.Changes() == 0 {
			return execNotFound(e.ID) // its box was removed meanwhile
		}
		if err := sqlitex.Execute(conn, "UPDATE exec_output SET size=?, truncated=?, synced=? WHERE exec_id=?;",
			&sqlitex.ExecOptions{Args: []any{logSize, truncated, synced, e.ID}}); err != nil {
			return fmt.Errorf("finish exec: %w", err)
		}
		for _, ev := range events {
			if err := insertEvent(conn, ev); err != nil {
				return fmt.Errorf("append final events: %w", err)
			}
		}
		snap := *e
		out, err = appendJournal(conn, FormatTime(e.FinishedAt), journalEntry{Type: EventExecExited, BoxID: e.BoxID, ExecID: e.ID, Exec: &snap})
		return err
	})
	return out, err
}

// outputSize returns the committed size of an exec's output log; ok is
// false for an exec without one (stored by an older version: its output is
// in the events table).
func (s *store) outputSize(ctx context.Context, execID string) (size int64, ok bool, err error) {
	err = s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT size FROM exec_output WHERE exec_id = ?;", &sqlitex.ExecOptions{
			Args:       []any{execID},
			ResultFunc: func(stmt *sqlite.Stmt) error { size, ok = stmt.ColumnInt64(0), true; return nil },
		})
	})
	return size, ok, err
}

// markSynced records that the output logs of execs are on disk up to
// their committed sizes.
func (s *store) markSynced(ctx context.Context, execIDs []string) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		for _, id := range execIDs {
			if err := sqlitex.Execute(conn, "UPDATE exec_output SET synced=1 WHERE exec_id=?;", &sqlitex.ExecOptions{Args: []any{id}}); err != nil {
				return fmt.Errorf("mark output synced: %w", err)
			}
		}
		return nil
	})
}

// unsyncedLogs returns the committed sizes of the output logs of finished
// execs not known to be on disk.
func (s *store) unsyncedLogs(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT o.exec_id, o.size FROM exec_output o JOIN execs e ON e.id = o.exec_id WHERE o.synced = 0 AND e.status != 'running';", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { out[stmt.ColumnText(0)] = stmt.ColumnInt64(1); return nil },
		})
	})
	return out, err
}

// repairOutput sets the committed size of an exec's log to what survived
// (see Manager.repairLogs) and marks it synced.
func (s *store) repairOutput(ctx context.Context, execID string, size int64) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "UPDATE exec_output SET size=?, synced=1 WHERE exec_id=?;", &sqlitex.ExecOptions{Args: []any{size, execID}})
	})
}

// outputLogs returns the IDs of every exec with an output log.
func (s *store) outputLogs(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT exec_id FROM exec_output;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { out[stmt.ColumnText(0)] = true; return nil },
		})
	})
	return out, err
}

// listEvents returns up to limit stored events of an exec with seq > after,
// by seq.
func (s *store) listEvents(ctx context.Context, execID string, after int64, limit int) ([]ExecEvent, error) {
	var out []ExecEvent
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT seq, type, stream, data, created_at FROM events WHERE exec_id = ? AND seq > ? ORDER BY seq, id LIMIT ?;",
			&sqlitex.ExecOptions{
				Args: []any{execID, after, limit},
				ResultFunc: func(stmt *sqlite.Stmt) error {
					t, _ := ParseTime(stmt.ColumnText(4))
					out = append(out, ExecEvent{ExecID: execID, Seq: stmt.ColumnInt64(0), Kind: EventKind(stmt.ColumnText(1)),
						Stream: stmt.ColumnText(2), Data: stmt.ColumnText(3), CreatedAt: t})
					return nil
				},
			})
	})
	return out, err
}

// maxSeq returns the highest stored seq of an exec, or -1.
func maxSeq(conn *sqlite.Conn, execID string) (int64, error) {
	seq := int64(-1)
	err := sqlitex.Execute(conn, "SELECT MAX(seq) FROM events WHERE exec_id = ?;", &sqlitex.ExecOptions{
		Args: []any{execID},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if stmt.ColumnType(0) != sqlite.TypeNull {
				seq = stmt.ColumnInt64(0)
			}
			return nil
		},
	})
	return seq, err
}

// failOrphanExec finishes an exec whose process is gone (found running after
// a restart) as failed with msg, appending an exit event after its last seq.
//
// logLast is the last seq in the exec's recovered output log (-1 if none)
// and logSize its valid size (-1: no log).
func (s *store) failOrphanExec(ctx context.Context, e *Exec, msg, now string, logSize, logLast int64) (Event, error) {
	var out Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		last, err := maxSeq(conn, e.ID)
		if err != nil {
			return err
		}
		last = max(last, logLast)
		if logSize >= 0 {
			if err := sqlitex.Execute(conn, "UPDATE exec_output SET size=? WHERE exec_id=?;",
				&sqlitex.ExecOptions{Args: []any{logSize, e.ID}}); err != nil {
				return err
			}
		}
		t, _ := ParseTime(now)
		data, _ := json.Marshal(ExitInfo{Error: msg})
		if err := insertEvent(conn, ExecEvent{ExecID: e.ID, Seq: last + 1, Kind: KindExit, Data: string(data), CreatedAt: t}); err != nil {
			return err
		}
		err = sqlitex.Execute(conn, "UPDATE execs SET status='failed', error_message=?, finished_at=? WHERE id=? AND status='running';",
			&sqlitex.ExecOptions{Args: []any{msg, now, e.ID}})
		if err != nil {
			return err
		}
		e.Status, e.ErrorMessage, e.FinishedAt = ExecFailed, msg, t
		snap := *e
		out, err = appendJournal(conn, now, journalEntry{Type: EventExecExited, BoxID: e.BoxID, ExecID: e.ID, Exec: &snap})
		return err
	})
	return out, err
}

// hasExit reports whether an exec has a stored exit event.
func (s *store) hasExit(ctx context.Context, execID string) (bool, error) {
	has := false
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT 1 FROM events WHERE exec_id = ? AND type = 'exit' LIMIT 1;", &sqlitex.ExecOptions{
			Args:       []any{execID},
			ResultFunc: func(*sqlite.Stmt) error { has = true; return nil },
		})
	})
	return has, err
}
