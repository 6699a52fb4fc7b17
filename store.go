package boxrun

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"sync"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitemigration"
	"zombiezen.com/go/sqlite/sqlitex"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// appID identifies BoxRun databases (PRAGMA application_id).
const appID int32 = 0x42787275 // "Bxru"

// store is the Manager's SQLite persistence. Every method takes a pooled
// connection for the duration of one operation; writes run in IMMEDIATE
// transactions. Helpers named with a conn parameter compose inside one.
type store struct {
	pool      *sqlitex.Pool
	closeOnce sync.Once
	closeErr  error
}

func openStore(ctx context.Context, file string) (*store, error) {
	pool, err := sqlitex.NewPool(file, sqlitex.PoolOptions{
		PoolSize: 8,
		PrepareConn: func(conn *sqlite.Conn) error {
			for _, q := range []string{"PRAGMA foreign_keys = ON;", "PRAGMA synchronous = NORMAL;",
				"PRAGMA journal_size_limit = 67108864;"} {
				if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", file, err)
	}
	s := &store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *store) migrate(ctx context.Context) error {
	conn, err := s.pool.Take(ctx)
	if err != nil {
		return err
	}
	defer s.pool.Put(conn)
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode = WAL;", nil); err != nil {
		return fmt.Errorf("enable WAL: %w", err)
	}
	names, err := fs.Glob(schemaFS, "schema/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var schema sqlitemigration.Schema
	schema.AppID = appID
	for _, n := range names {
		b, err := schemaFS.ReadFile(n)
		if err != nil {
			return err
		}
		schema.Migrations = append(schema.Migrations, string(b))
	}
	// A database made by an early reference version lacks two columns that
	// the reference added with ALTER TABLE on every start.
	if err := addMissingColumns(conn, map[string]string{
		"volumes":      "ALTER TABLE boxes ADD COLUMN volumes TEXT;",
		"disk_size_gb": "ALTER TABLE boxes ADD COLUMN disk_size_gb INTEGER NOT NULL DEFAULT 8;",
	}); err != nil {
		return err
	}
	// A reference server's database has no application ID: claim it.
	var id int64
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA application_id;", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { id = stmt.ColumnInt64(0); return nil },
	}); err != nil {
		return err
	}
	if id == 0 {
		if err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA application_id = %d;", appID), nil); err != nil {
			return err
		}
	}
	if err := sqlitemigration.Migrate(ctx, conn, schema); err != nil {
		return fmt.Errorf("migrate %s: %w", path.Base(names[len(names)-1]), err)
	}
	return enableAutoVacuum(conn)
}

// addMissingColumns adds columns to an existing boxes table.
func addMissingColumns(conn *sqlite.Conn, alters map[string]string) error {
	have := map[string]bool{}
	err := sqlitex.ExecuteTransient(conn, "PRAGMA table_info(boxes);", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			have[stmt.GetText("name")] = true
			return nil
		},
	})
	if err != nil || len(have) == 0 {
		return err // no table yet: the migrations create it whole
	}
	for col, q := range alters {
		if !have[col] {
			if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
				return fmt.Errorf("add column %s: %w", col, err)
			}
		}
	}
	return nil
}

// close closes the pool; it is idempotent.
func (s *store) close() error {
	s.closeOnce.Do(func() { s.closeErr = s.pool.Close() })
	return s.closeErr
}

// read runs fn on a pooled connection.
func (s *store) read(ctx context.Context, fn func(conn *sqlite.Conn) error) error {
	conn, err := s.pool.Take(ctx)
	if err != nil {
		return err
	}
	defer s.pool.Put(conn)
	return fn(conn)
}

// write runs fn in an IMMEDIATE transaction on a pooled connection.
func (s *store) write(ctx context.Context, fn func(conn *sqlite.Conn) error) (err error) {
	conn, err := s.pool.Take(ctx)
	if err != nil {
		return err
	}
	defer s.pool.Put(conn)
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return err
	}
	defer end(&err)
	return fn(conn)
}

// journalEntry is a lifecycle event recorded with the change that caused it.
type journalEntry struct {
	Type   EventType
	BoxID  string
	ExecID string
	Box    *Box
	Exec   *Exec
}

// appendJournal records e and returns the Event with its Seq.
func appendJournal(conn *sqlite.Conn, now string, e journalEntry) (Event, error) {
	var data []byte
	var err error
	switch {
	case e.Exec != nil:
		data, err = json.Marshal(e.Exec)
	case e.Box != nil:
		data, err = json.Marshal(e.Box)
	}
	if err != nil {
		return Event{}, err
	}
	err = sqlitex.Execute(conn, "INSERT INTO journal(time, type, box_id, exec_id, data) VALUES (?, ?, ?, ?, ?);",
		&sqlitex.ExecOptions{Args: []any{now, string(e.Type), nullStr(e.BoxID), nullStr(e.ExecID), nullBytes(data)}})
	if err != nil {
		return Event{}, fmt.Errorf("append journal: %w", err)
	}
	t, _ := ParseTime(now)
	return Event{Seq: conn.LastInsertRowID(), Time: t, Type: e.Type, BoxID: e.BoxID, ExecID: e.ExecID, Box: e.Box, Exec: e.Exec}, nil
}

// lastJournalSeq returns the highest journal seq, or 0 when it is empty.
func (s *store) lastJournalSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT COALESCE(MAX(seq), 0) FROM journal;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { seq = stmt.ColumnInt64(0); return nil },
		})
	})
	return seq, err
}

// journal returns up to limit journaled events with f.AfterSeq < seq (and
// seq < before, when before > 0) of f.BoxID (any box when empty), oldest
// first. Types are not filtered here.
func (s *store) journal(ctx context.Context, f EventFilter, before int64, limit int) ([]Event, error) {
	var out []Event
	if before <= 0 {
		before = math.MaxInt64
	}
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT seq, time, type, box_id, exec_id, data FROM journal
			WHERE seq > ? AND seq < ? AND (? = '' OR box_id = ?) ORDER BY seq LIMIT ?;`, &sqlitex.ExecOptions{
			Args: []any{f.AfterSeq, before, f.BoxID, f.BoxID, limit},
			ResultFunc: func(stmt *sqlite.Stmt) error {
				t, _ := ParseTime(stmt.ColumnText(1))
				ev := Event{Seq: stmt.ColumnInt64(0), Time: t, Type: EventType(stmt.ColumnText(2)),
					BoxID: stmt.ColumnText(3), ExecID: stmt.ColumnText(4)}
				if data := stmt.ColumnText(5); data != "" {
					if ev.ExecID != "" {
						ev.Exec = new(Exec)
						_ = json.Unmarshal([]byte(data), ev.Exec)
					} else {
						ev.Box = new(Box)
						_ = json.Unmarshal([]byte(data), ev.Box)
					}
				}
				out = append(out, ev)
				return nil
			},
		})
	})
	return out, err
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func jsonText(v any, isNil bool) any {
	if isNil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return string(b)
}

func isUniqueViolation(err error) bool {
	code := sqlite.ErrCode(err)
	return code == sqlite.ResultConstraintUnique || code == sqlite.ResultConstraintPrimaryKey
}
