package boxrun

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Snapshot row states.
const (
	snapCreating = "creating" // intent: removed with its files by Open
	snapReady    = "ready"
	// snapHibernated is the saved state of a hibernated box (its
	// source_box_id), never listed; removed when the box resumes or goes.
	snapHibernated = "hibernated"
)

const snapColumns = `id, state, source_box_id, image, image_digest, cpu, memory_mb, disk_size_gb, workdir, env,
	size_bytes, driver, cpu_features, created_at, network`

// snapRow is a Snapshot with its row state.
type snapRow struct {
	Snapshot
	State string
	// Network: the source box had a network (restored boxes get their own).
	Network bool
}

func scanSnap(stmt *sqlite.Stmt) *snapRow {
	s := &snapRow{}
	s.ID = stmt.ColumnText(0)
	s.State = stmt.ColumnText(1)
	s.SourceBoxID = stmt.ColumnText(2)
	s.Image = stmt.ColumnText(3)
	s.ImageDigest = stmt.ColumnText(4)
	s.CPU = stmt.ColumnInt64(5)
	s.MemoryMB = stmt.ColumnInt64(6)
	s.DiskSizeGB = stmt.ColumnInt64(7)
	s.Workdir = stmt.ColumnText(8)
	if v := stmt.ColumnText(9); v != "" {
		if json.Unmarshal([]byte(v), &s.Env) != nil {
			s.Env = nil
		}
	}
	s.SizeBytes = stmt.ColumnInt64(10)
	s.Driver = stmt.ColumnText(11)
	s.CPUFeatures = stmt.ColumnText(12)
	s.CreatedAt, _ = ParseTime(stmt.ColumnText(13))
	s.Network = stmt.ColumnInt64(14) != 0
	return s
}

// insertSnapshot records the intent of a checkpoint (state creating).
func (s *store) insertSnapshot(ctx context.Context, r *snapRow) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		err := sqlitex.Execute(conn, "INSERT INTO snapshots("+snapColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?);",
			&sqlitex.ExecOptions{Args: []any{r.ID, r.State, r.SourceBoxID, r.Image, nullStr(r.ImageDigest), r.CPU,
				r.MemoryMB, r.DiskSizeGB, r.Workdir, jsonText(r.Env, r.Env == nil), r.SizeBytes, r.Driver,
				r.CPUFeatures, FormatTime(r.CreatedAt), r.Network}})
		if err != nil {
			return fmt.Errorf("insert snapshot: %w", err)
		}
		return nil
	})
}

// sealSnapshot stores the manifest and size of a saved snapshot and moves
// it to state (kept when "").
func (s *store) sealSnapshot(ctx context.Context, id, state string, size int64, manifest string) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		err := sqlitex.Execute(conn, "UPDATE snapshots SET state = coalesce(nullif(?, ''), state), size_bytes = ?, manifest = ? WHERE id = ?;",
			&sqlitex.ExecOptions{Args: []any{state, size, manifest, id}})
		if err != nil {
			return fmt.Errorf("seal snapshot: %w", err)
		}
		return nil
	})
}

// snapshotManifest returns the seal of snapshot id; ok is false when it
// has none.
func (s *store) snapshotManifest(ctx context.Context, id string) (manifest string, ok bool, err error) {
	err = s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT manifest FROM snapshots WHERE id = ? AND manifest IS NOT NULL;",
			&sqlitex.ExecOptions{Args: []any{id}, ResultFunc: func(stmt *sqlite.Stmt) error {
				manifest, ok = stmt.ColumnText(0), true
				return nil
			}})
	})
	return manifest, ok, err
}

// deleteSnapshot deletes a snapshot row; it reports whether there was one.
func (s *store) deleteSnapshot(ctx context.Context, id string) (bool, error) {
	var found bool
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		if err := sqlitex.Execute(conn, "DELETE FROM snapshots WHERE id = ?;", &sqlitex.ExecOptions{Args: []any{id}}); err != nil {
			return fmt.Errorf("delete snapshot: %w", err)
		}
		found = conn.Changes() > 0
		return nil
	})
	return found, err
}

// getSnapshot returns a ready snapshot, or SNAPSHOT_NOT_FOUND.
func (s *store) getSnapshot(ctx context.Context, id string) (*snapRow, error) {
	var out *snapRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+snapColumns+" FROM snapshots WHERE id = ? AND state = ?;",
			&sqlitex.ExecOptions{Args: []any{id, snapReady}, ResultFunc: func(stmt *sqlite.Stmt) error {
				out = scanSnap(stmt)
				return nil
			}})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, snapshotNotFound(id)
	}
	return out, nil
}

// listSnapshots returns the snapshots in state (any when ""), newest first.
func (s *store) listSnapshots(ctx context.Context, state string) ([]*snapRow, error) {
	var out []*snapRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+snapColumns+" FROM snapshots WHERE (? = '' OR state = ?) ORDER BY created_at DESC, rowid DESC;",
			&sqlitex.ExecOptions{Args: []any{state, state}, ResultFunc: func(stmt *sqlite.Stmt) error {
				out = append(out, scanSnap(stmt))
				return nil
			}})
	})
	return out, err
}

// insertRestoredBox inserts the running box b made by a restore (or fork)
// and journals box.created and box.started, in one transaction. A name
// that resolves to an existing box fails with NAME_ALREADY_EXISTS.
func (s *store) insertRestoredBox(ctx context.Context, b *boxRow) ([]Event, error) {
	var out []Event
	err := s.write(ctx, func(conn *sqlite.Conn) error {
		out = out[:0]
		if b.Name != "" {
			other, err := findBox(conn, b.Name)
			if err != nil {
				return err
			}
			if other != nil {
				return nameExists(b.Name)
			}
		}
		created := b.Box
		created.Status, created.StartedAt = StatusCreating, time.Time{}
		b.Status = StatusRunning
		err := sqlitex.Execute(conn, "INSERT INTO boxes("+boxColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?);",
			&sqlitex.ExecOptions{Args: boxArgs(b)})
		if isUniqueViolation(err) {
			return nameExists(b.Name)
		}
		if err != nil {
			return fmt.Errorf("insert box: %w", err)
		}
		ev, err := appendJournal(conn, FormatTime(b.CreatedAt), journalEntry{Type: EventBoxCreated, BoxID: b.ID, Box: &created})
		if err != nil {
			return err
		}
		started := b.Box
		ev2, err := appendJournal(conn, FormatTime(b.StartedAt), journalEntry{Type: EventBoxStarted, BoxID: b.ID, Box: &started})
		out = append(out, ev, ev2)
		return err
	})
	if err != nil {
		b.Status = StatusCreating
	}
	return out, err
}

// hibernationOf returns the saved state of hibernated box boxID, or nil.
func (s *store) hibernationOf(ctx context.Context, boxID string) (*snapRow, error) {
	var out *snapRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, "SELECT "+snapColumns+" FROM snapshots WHERE source_box_id = ? AND state = ? ORDER BY created_at DESC LIMIT 1;",
			&sqlitex.ExecOptions{Args: []any{boxID, snapHibernated}, ResultFunc: func(stmt *sqlite.Stmt) error {
				out = scanSnap(stmt)
				return nil
			}})
	})
	return out, err
}
