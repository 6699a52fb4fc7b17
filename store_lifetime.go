package boxrun

import (
	"context"
	"fmt"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// lifetimeRow is a box_lifetime row (with the box's start for running ones).
type lifetimeRow struct {
	BoxID       string
	TTL         time.Duration
	IdleTimeout time.Duration
	OnExpire    ExpireAction
	startedAt   time.Time
	last        time.Time
	expiredBy   string
}

// insertLifetime records the limits of a new box.
func (s *store) insertLifetime(ctx context.Context, boxID string, ttl, idle time.Duration, action ExpireAction) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		err := sqlitex.Execute(conn, `INSERT INTO box_lifetime(box_id, ttl_ms, idle_timeout_ms, on_expire) VALUES (?, ?, ?, ?);`,
			&sqlitex.ExecOptions{Args: []any{boxID, ttl.Milliseconds(), idle.Milliseconds(), string(action)}})
		if err != nil {
			return fmt.Errorf("insert lifetime: %w", err)
		}
		return nil
	})
}

// touchLifetime records the last activity of a box.
func (s *store) touchLifetime(ctx context.Context, boxID, at string) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `UPDATE box_lifetime SET last_activity_at = ? WHERE box_id = ?;`,
			&sqlitex.ExecOptions{Args: []any{at, boxID}})
	})
}

// setExpired records why a box expired ("" on a new start).
func (s *store) setExpired(ctx context.Context, boxID, why string) error {
	return s.write(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `UPDATE box_lifetime SET expired_by = ? WHERE box_id = ?;`,
			&sqlitex.ExecOptions{Args: []any{nullStr(why), boxID}})
	})
}

const lifetimeColumns = `l.box_id, l.ttl_ms, l.idle_timeout_ms, l.on_expire, l.last_activity_at, l.expired_by, b.started_at`

func scanLifetime(stmt *sqlite.Stmt) *lifetimeRow {
	r := &lifetimeRow{
		BoxID:       stmt.ColumnText(0),
		TTL:         time.Duration(stmt.ColumnInt64(1)) * time.Millisecond,
		IdleTimeout: time.Duration(stmt.ColumnInt64(2)) * time.Millisecond,
		OnExpire:    ExpireAction(stmt.ColumnText(3)),
		expiredBy:   stmt.ColumnText(5),
	}
	r.last, _ = ParseTime(stmt.ColumnText(4))
	r.startedAt, _ = ParseTime(stmt.ColumnText(6))
	return r
}

// getLifetime returns the lifetime row of a box, nil when it has none.
func (s *store) getLifetime(ctx context.Context, boxID string) (*lifetimeRow, error) {
	var out *lifetimeRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT `+lifetimeColumns+` FROM box_lifetime l JOIN boxes b ON b.id = l.box_id WHERE l.box_id = ?;`,
			&sqlitex.ExecOptions{Args: []any{boxID}, ResultFunc: func(stmt *sqlite.Stmt) error { out = scanLifetime(stmt); return nil }})
	})
	return out, err
}

// runningLifetimes returns the lifetime rows of running boxes with a limit.
func (s *store) runningLifetimes(ctx context.Context) ([]*lifetimeRow, error) {
	var out []*lifetimeRow
	err := s.read(ctx, func(conn *sqlite.Conn) error {
		return sqlitex.Execute(conn, `SELECT `+lifetimeColumns+` FROM box_lifetime l JOIN boxes b ON b.id = l.box_id
			WHERE b.status = 'running' AND (l.ttl_ms > 0 OR l.idle_timeout_ms > 0);`,
			&sqlitex.ExecOptions{ResultFunc: func(stmt *sqlite.Stmt) error { out = append(out, scanLifetime(stmt)); return nil }})
	})
	return out, err
}
