package boxrun

import (
	"context"
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

const boxColumns = `id, name, status, image, cpu, memory_mb, disk_size_gb, network, workdir, env, volumes,
	boxlite_id, error_code, error_message, created_at, started_at, stopped_at, image_digest`

// boxRow is a Box with the columns the API does not show.
type boxRow struct {
	Box
	ImageDigest string
	// run marks the box of an ephemeral run (inserted into run_boxes with
	// the row: Open deletes it).
	run bool
}

func scanBox(stmt *sqlite.Stmt) *boxRow {
	b := &boxRow{}
	b.ID = stmt.ColumnText(0)
	b.Name = stmt.ColumnText(1)
	b.Status = BoxStatus(stmt.ColumnText(2))
	b.Image = stmt.ColumnText(3)
	b.CPU = stmt.ColumnInt64(4)
	b.MemoryMB = stmt.ColumnInt64(5)
	b.DiskSizeGB = stmt.ColumnInt64(6)
	b.Network = stmt.ColumnInt64(7) != 0
	b.Workdir = stmt.ColumnText(8)
	if s := stmt.ColumnText(9); s != "" {
		if json.Unmarshal([]byte(s), &b.Env) != nil {
			b.Env = nil
		}
	}
	if s := stmt.ColumnText(10); s != "" {
		if json.Unmarshal([]byte(s), &b.Volumes) != nil {
			b.Volumes = nil
		}
	}
	b.Handle = stmt.ColumnText(11)
	b.ErrorCode = stmt.ColumnText(12)
	b.ErrorMessage = stmt.ColumnText(13)
	b.CreatedAt, _ = ParseTime(stmt.ColumnText(14))
	b.StartedAt, _ = ParseTime(stmt.ColumnText(15))
	b.StoppedAt, _ = ParseTime(stmt.ColumnText(16))
	b.ImageDigest = stmt.ColumnText(17)
	return b
}

func boxArgs(b *boxRow) []any {
	return []any{b.ID, nullStr(b.Name), string(b.Status), b.Image, b.CPU, b.MemoryMB, b.DiskSizeGB,
		b.Network, b.Workdir, jsonText(b.Env, b.Env == nil), jsonText(b.Volumes, b.Volumes == nil),
		nullStr(b.Handle), nullStr(b.ErrorCode), nullStr(b.ErrorMessage), FormatTime(b.CreatedAt),
		nullStr(FormatTime(b.StartedAt)), nullStr(FormatTime(b.StoppedAt)), nullStr(b.ImageDigest)}
}

// findBox looks a box up by exact ID, then by exact name. It returns nil
// when there is none.
func findBox(conn *sqlite.Conn, idOrName string) (*boxRow, error) {
	var found *boxRow
	for _, q := range []string{
		"SELECT " + boxColumns + " FROM boxes WHERE id = ?;",
		"SELECT " + boxColumns + " FROM boxes WHERE name = ?;",
	} {
		err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{
			Args:       []any{idOrName},
			ResultFunc: func(stmt *sqlite.Stmt) error { found = scanBox(stmt); return nil },
		})
		if err != nil || found != nil {
			return found, err
		}
	}
	return nil, nil
}

// getBox returns the box with that ID or name, or BOX_NOT_FOUND.
func (s *store) getBox(ctx context.Context, idOrName string) (*boxRow, error) {
	var b *boxRow
	err := s.read(ctx, func(conn *sqlite.Conn) (err error) {
		b, err = findBox(conn, idOrName)
		return err
	})
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, boxNotFound(idOrName)
	}
	return b, nil
}

func (s *store) listBoxes(ctx context.Context, status BoxStatus) ([]*boxRow, error) {
	var out []*boxRow
	q := "SELECT " + boxColumns + " FROM boxes WHERE (? = '' OR status = ?) ORDER BY created_at DESC, rowid DESC;"
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, q, &sqlitex.ExecOptions{
			Args:       []any{string(status), string(status)},
			ResultFunc: func(stmt *sqlite.Stmt) error { out = append(out, scanBox(stmt)); return nil },
		})
	})
	return out, err
}

// insertBox inserts b, failing with NAME_ALREADY_EXISTS when its name
// resolves to an existing box (by name or ID), and journals ev.
func (s *store) insertBox(ctx context.Context, b *boxRow, ev EventType) (Event, error) {
	var out Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		if b.Name != "" {
			other, err := findBox(conn, b.Name)
			if err != nil {
				return err
			}
			if other != nil {
				return nameExists(b.Name)
			}
		}
		err := sqlitex.Execute(conn, "INSERT INTO boxes("+boxColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?);",
			&sqlitex.ExecOptions{Args: boxArgs(b)})
		if isUniqueViolation(err) {
			return nameExists(b.Name)
		}
		if err != nil {
			return fmt.Errorf("insert box: %w", err)
		}
		if b.run {
			if err := sqlitex.Execute(conn, "INSERT INTO run_boxes(box_id) VALUES (?);", &sqlitex.ExecOptions{Args: []any{b.ID}}); err != nil {
				return fmt.Errorf("insert box: %w", err)
			}
		}
		box := b.Box
		out, err = appendJournal(conn, FormatTime(b.CreatedAt), journalEntry{Type: ev, BoxID: b.ID, Box: &box})
		return err
	})
	return out, err
}

func nameExists(name string) *Error {
	return Errorf(CodeNameAlreadyExists, "A box with name '%s' already exists", name)
}

// updateBox writes b's mutable columns and journals ev (when not "").
func (s *store) updateBox(ctx context.Context, b *boxRow, ev EventType, now string) (Event, error) {
	var out Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		args := boxArgs(b)
		err := sqlitex.Execute(conn, `UPDATE boxes SET status=?, image=?, cpu=?, memory_mb=?, disk_size_gb=?, network=?,
			workdir=?, env=?, volumes=?, boxlite_id=?, error_code=?, error_message=?, started_at=?, stopped_at=?,
			image_digest=? WHERE id=?;`, &sqlitex.ExecOptions{Args: append(append([]any{}, args[2:14]...), args[15], args[16], args[17], b.ID)})
		if err != nil {
			return fmt.Errorf("update box: %w", err)
		}
		if conn.Changes() == 0 {
			return boxNotFound(b.ID)
		}
		if ev == "" {
			return nil
		}
		box := b.Box
		out, err = appendJournal(conn, now, journalEntry{Type: ev, BoxID: b.ID, Box: &box})
		return err
	})
	return out, err
}

// deleteBox deletes a box with its execs and their events, and journals
// box.removed. It returns the IDs of the deleted execs that had output
// logs: the caller removes those files after the commit.
func (s *store) deleteBox(ctx context.Context, b *boxRow, now string) (Event, []string, error) {
	var out Event
	var logs []string
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		logs = logs[:0]
		err := sqlitex.Execute(conn, "SELECT exec_id FROM exec_output WHERE exec_id IN (SELECT id FROM execs WHERE box_id = ?);",
			&sqlitex.ExecOptions{Args: []any{b.ID}, ResultFunc: func(stmt *sqlite.Stmt) error {
				logs = append(logs, stmt.ColumnText(0))
				return nil
			}})
		if err != nil {
			return fmt.Errorf("delete box: %w", err)
		}
		for _, q := range []string{
			"DELETE FROM exec_output WHERE exec_id IN (SELECT id FROM execs WHERE box_id = ?);",
			"DELETE FROM events WHERE exec_id IN (SELECT id FROM execs WHERE box_id = ?);",
			"DELETE FROM execs WHERE box_id = ?;",
			"DELETE FROM boxes WHERE id = ?;",
		} {
			if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{b.ID}}); err != nil {
				return fmt.Errorf("delete box: %w", err)
			}
		}
		box := b.Box
		out, err = appendJournal(conn, now, journalEntry{Type: EventBoxRemoved, BoxID: b.ID, Box: &box})
		return err
	})
	return out, logs, err
}

// gcCandidates returns the IDs of stopped boxes stopped before cutoff and
// error boxes created before it (timestamps compared as strings, as the spec says).
func (s *store) gcCandidates(ctx context.Context, cutoff string) ([]string, error) {
	var ids []string
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT id FROM boxes WHERE (status = 'stopped' AND stopped_at < ?)
			OR (status = 'error' AND created_at < ?) ORDER BY created_at;`, &sqlitex.ExecOptions{
			Args:       []any{cutoff, cutoff},
			ResultFunc: func(stmt *sqlite.Stmt) error { ids = append(ids, stmt.ColumnText(0)); return nil },
		})
	})
	return ids, err
}

// runBoxes returns the boxes of ephemeral runs (see boxRow.run).
func (s *store) runBoxes(ctx context.Context) ([]*boxRow, error) {
	var out []*boxRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+boxColumns+" FROM boxes WHERE id IN (SELECT box_id FROM run_boxes) ORDER BY created_at;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error {
				b := scanBox(stmt)
				b.run = true
				out = append(out, b)
				return nil
			},
		})
	})
	return out, err
}
