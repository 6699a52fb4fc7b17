package boxrun

// Journal retention and space reclamation.
//
// The event journal grows with every lifecycle change, and the database
// file keeps the pages of everything deleted (a removed box's execs and
// events) unless they are given back. So a maintenance goroutine:
//   - deletes journal entries older than the retention age and all but the
//     newest retention-count entries (WithJournalRetention), in batches so
//     writers are never held up for long;
//   - returns free pages to the file system: the database runs with
//     auto_vacuum = INCREMENTAL (set when the file is created, or converted
//     once by a VACUUM on the first Open of an older file), and after
//     deletions it runs incremental_vacuum and a WAL checkpoint, so the file
//     shrinks by what was deleted.
//
// It runs at Open, every maintenanceInterval, and soon after a box is
// removed. A subscriber resuming from a seq that retention already deleted
// gets the retained events after it (the older ones are gone).

import (
	"context"
	"fmt"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Defaults of WithJournalRetention.
const (
	// DefaultJournalMaxAge is how long journal entries are kept: 7 days.
	DefaultJournalMaxAge = 7 * 24 * time.Hour
	// DefaultJournalMaxEntries is how many journal entries are kept at most.
	DefaultJournalMaxEntries = 100_000
)

const (
	maintenanceInterval = time.Minute
	trimBatch           = 5000 // journal rows deleted per transaction
	vacuumBatch         = 2048 // pages freed per incremental_vacuum step
	minFreePages        = 16   // below this, free pages are left for reuse
)

// WithJournalRetention bounds the event journal: entries older than maxAge
// and all but the newest maxEntries are deleted (checked at Open, every
// minute and after removals). Zero keeps a default (DefaultJournalMaxAge,
// DefaultJournalMaxEntries); negative disables that bound.
func WithJournalRetention(maxAge time.Duration, maxEntries int64) Option {
	return func(c *config) error {
		if maxAge != 0 {
			c.journalMaxAge = maxAge
		}
		if maxEntries != 0 {
			c.journalMaxEntries = maxEntries
		}
		return nil
	}
}

// maintainer runs maintenance until the Manager closes.
func (m *Manager) maintainer() {
	defer m.wg.Done()
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	for {
		if err := m.maintain(m.ctx); err != nil && m.ctx.Err() == nil {
			m.log.Warn("maintenance", "err", err)
		}
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.maintainWake:
		}
	}
}

// nudgeMaintenance asks the maintainer to run soon (it does not wait).
func (m *Manager) nudgeMaintenance() {
	select {
	case m.maintainWake <- struct{}{}:
	default:
	}
}

// maintain trims the journal and reclaims free pages.
func (m *Manager) maintain(ctx context.Context) error {
	var cutoff string
	if m.cfg.journalMaxAge > 0 {
		cutoff = FormatTime(m.now().Add(-m.cfg.journalMaxAge))
	}
	if _, err := m.store.trimJournal(ctx, cutoff, m.cfg.journalMaxEntries); err != nil {
		return err
	}
	return m.store.reclaim(ctx)
}

// trimJournal deletes journal entries with a time before cutoff (when not
// empty) and all but the newest maxEntries (when > 0), and returns how many
// it deleted.
func (s *store) trimJournal(ctx context.Context, cutoff string, maxEntries int64) (int64, error) {
	var total int64
	for {
		var n int
		err := s.write(ctx, func(conn *sqlite.Conn) error {
			var floor int64 // entries with seq < floor go
			if maxEntries > 0 {
				err := sqlitex.Execute(conn, "SELECT seq FROM journal ORDER BY seq DESC LIMIT 1 OFFSET ?;", &sqlitex.ExecOptions{
					Args:       []any{maxEntries - 1},
					ResultFunc: func(stmt *sqlite.Stmt) error { floor = stmt.ColumnInt64(0); return nil },
				})
				if err != nil {
					return err
				}
			}
			err := sqlitex.Execute(conn, `DELETE FROM journal WHERE seq IN (SELECT seq FROM journal
				WHERE seq < ? OR (? != '' AND time < ?) ORDER BY seq LIMIT ?);`, &sqlitex.ExecOptions{
				Args: []any{floor, cutoff, cutoff, trimBatch},
			})
			n = conn.Changes()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("trim journal: %w", err)
		}
		total += int64(n)
		if n < trimBatch {
			return total, nil
		}
	}
}

// reclaim gives free pages back to the file system (see the file comment)
// when there are enough of them to matter.
func (s *store) reclaim(ctx context.Context) error {
	return s.read(ctx, func(conn *sqlite.Conn) error {
		freed := false
		for {
			free, err := pragmaInt(conn, "PRAGMA freelist_count;")
			if err != nil {
				return fmt.Errorf("reclaim: %w", err)
			}
			if free < minFreePages || (freed && free == 0) {
				break
			}
			if err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA incremental_vacuum(%d);", vacuumBatch), nil); err != nil {
				return fmt.Errorf("reclaim: incremental vacuum: %w", err)
			}
			freed = true
			if free <= vacuumBatch {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !freed {
			return nil
		}
		// The file shrinks when the WAL holding the truncation is
		// checkpointed; TRUNCATE also empties the WAL file. Readers in
		// progress may keep part of it for the next round.
		if err := sqlitex.ExecuteTransient(conn, "PRAGMA wal_checkpoint(TRUNCATE);", nil); err != nil && sqlite.ErrCode(err) != sqlite.ResultBusy {
			return fmt.Errorf("reclaim: checkpoint: %w", err)
		}
		return nil
	})
}

// pragmaInt runs a pragma that returns one integer.
func pragmaInt(conn *sqlite.Conn, q string) (int64, error) {
	var v int64
	err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { v = stmt.ColumnInt64(0); return nil },
	})
	return v, err
}

// enableAutoVacuum makes the database run with auto_vacuum = INCREMENTAL.
// The setting takes effect only through a VACUUM once the file has pages
// (WAL mode writes the first page at once), so a file made without it (a
// new one, an older BoxRun, the reference server) is rebuilt once, after
// the migrations, outside any transaction.
func enableAutoVacuum(conn *sqlite.Conn) error {
	mode, err := pragmaInt(conn, "PRAGMA auto_vacuum;")
	if err != nil {
		return fmt.Errorf("auto_vacuum: %w", err)
	}
	if mode == 2 {
		return nil
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA auto_vacuum = INCREMENTAL;", nil); err != nil {
		return fmt.Errorf("auto_vacuum: %w", err)
	}
	pages, err := pragmaInt(conn, "PRAGMA page_count;")
	if err != nil {
		return fmt.Errorf("auto_vacuum: %w", err)
	}
	if pages == 0 {
		return nil
	}
	if err := sqlitex.ExecuteTransient(conn, "VACUUM;", nil); err != nil {
		return fmt.Errorf("auto_vacuum: convert existing database: %w", err)
	}
	return nil
}
