package boxrun_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// A driver without sandbox.Checkpointer (the fake) refuses snapshots with
// VALIDATION_ERROR and nothing is made; unknown snapshots are
// SNAPSHOT_NOT_FOUND. Real checkpoints are tested with gVisor
// (driver/gvisor/snapshot_manager_test.go).
func TestManager_SnapshotsUnsupported(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{Image: "test"})
	_, err := m.Checkpoint(ctx, b.ID, boxrun.CheckpointOptions{})
	wantCode(t, err, boxrun.CodeValidationError, "The fake driver cannot checkpoint boxes")
	_, err = m.Fork(ctx, b.ID, 2)
	wantCode(t, err, boxrun.CodeValidationError, "")
	_, err = m.Fork(ctx, b.ID, 0)
	wantCode(t, err, boxrun.CodeValidationError, "count must be between 1 and 16")
	_, err = m.Restore(ctx, "snap_x", boxrun.RestoreSpec{})
	wantCode(t, err, boxrun.CodeValidationError, "")
	_, err = m.GetSnapshot(ctx, "snap_x")
	wantCode(t, err, boxrun.CodeSnapshotNotFound, "Snapshot 'snap_x' not found")
	wantCode(t, m.RemoveSnapshot(ctx, "snap_x"), boxrun.CodeSnapshotNotFound, "")
	if list, err := m.Snapshots(ctx); err != nil || len(list) != 0 {
		t.Errorf("snapshots: %v %v", list, err)
	}
	if got, _ := m.Get(ctx, b.ID); got.Status != boxrun.StatusRunning {
		t.Errorf("box after refusals: %s", got.Status)
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "snapshots")); !os.IsNotExist(err) {
		t.Errorf("snapshots dir made: %v", err)
	}
}
