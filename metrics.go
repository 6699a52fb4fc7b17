package boxrun

import (
	"context"
	"os"
	"path/filepath"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// ServerMetrics is a snapshot of a Manager for operators (Manager.Metrics).
type ServerMetrics = boxapi.ServerMetrics

// BoxUsage is the resource use of one running box in a ServerMetrics.
type BoxUsage = boxapi.BoxUsage

// Metrics returns a snapshot for operators: boxes by status, running execs,
// journal entries, database size, file watches and, when the driver
// reports stats, each running box's cumulative CPU time and memory (read
// from the driver now: cheap, one reading per box). Boxes that stop or go
// between the listing and their reading are left out.
func (m *Manager) Metrics(ctx context.Context) (*ServerMetrics, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	out := &ServerMetrics{BoxesByStatus: map[BoxStatus]int64{
		StatusCreating: 0, StatusRunning: 0, StatusStopped: 0, StatusError: 0,
	}}
	err := m.store.read(ctx, func(conn *sqlite.Conn) error {
		if err := sqlitex.Execute(conn, "SELECT status, count(*) FROM boxes GROUP BY status;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error {
				out.BoxesByStatus[BoxStatus(stmt.ColumnText(0))] = stmt.ColumnInt64(1)
				return nil
			},
		}); err != nil {
			return err
		}
		return sqlitex.Execute(conn, "SELECT count(*) FROM journal;", &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { out.JournalEntries = stmt.ColumnInt64(0); return nil },
		})
	})
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "Failed to read metrics: %w", err)
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(m.dir, "boxrun.db"+suffix)); err == nil {
			out.DatabaseBytes += fi.Size()
		}
	}
	m.mu.Lock()
	out.RunningExecs = int64(len(m.runs))
	m.mu.Unlock()
	out.FileWatches = int64(m.watchCount())
	st, ok := m.driver.(sandbox.Statser)
	if !ok {
		return out, nil
	}
	running, err := m.store.listBoxes(ctx, StatusRunning)
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "Failed to read metrics: %w", err)
	}
	for _, b := range running {
		if b.Handle == "" {
			continue
		}
		raw, err := st.Stats(ctx, b.Handle)
		if err != nil {
			continue
		}
		u := BoxUsage{ID: b.ID, Name: b.Name, CPUSeconds: raw.CPUTime.Seconds(), MemoryBytes: raw.MemoryBytes, MemoryLimitBytes: raw.MemoryLimitBytes}
		if u.MemoryLimitBytes <= 0 {
			u.MemoryLimitBytes = b.MemoryMB << 20
		}
		out.Boxes = append(out.Boxes, u)
	}
	return out, nil
}
