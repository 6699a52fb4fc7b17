package boxapi

import (
	"context"
	"fmt"
	"time"
)

// Snapshot is a saved box: the memory of its processes and its files, taken
// by Snapshotter.Checkpoint. A snapshot outlives its source box and the
// server; Restore makes any number of new boxes from it.
type Snapshot struct {
	ID string `json:"id"` // "snap_…"
	// SourceBoxID is the box it was taken from (which may be gone since).
	SourceBoxID string `json:"source_box_id"`
	// Image is the source box's image reference, ImageDigest its digest.
	Image       string `json:"image"`
	ImageDigest string `json:"image_digest,omitempty"`
	// The shape of the source box; restored boxes get the same.
	CPU        int64             `json:"cpu"`
	MemoryMB   int64             `json:"memory_mb"`
	DiskSizeGB int64             `json:"disk_size_gb"`
	Workdir    string            `json:"workdir"`
	Env        map[string]string `json:"env"`
	// SizeBytes is the disk space the snapshot takes (allocated blocks).
	SizeBytes int64 `json:"size_bytes"`
	// Driver is the driver that took it; only that driver restores it.
	Driver string `json:"driver"`
	// CPUFeatures are the host CPU's feature flags at checkpoint time
	// (sorted, space separated): a host that lacks one of them refuses to
	// restore the snapshot.
	CPUFeatures string    `json:"cpu_features"`
	CreatedAt   time.Time `json:"created_at"`
}

// CheckpointOptions tune Snapshotter.Checkpoint.
type CheckpointOptions struct {
	// LeaveRunning keeps the box running after the checkpoint; by default
	// it is stopped (its files are kept: Start boots it afresh).
	LeaveRunning bool `json:"leave_running"`
}

// RestoreSpec describes the box Snapshotter.Restore makes. The shape, image,
// env and workdir are the snapshot's.
type RestoreSpec struct {
	// Name is the new box's name ("" for none); it must not resolve to an
	// existing box (NAME_ALREADY_EXISTS).
	Name string `json:"name,omitempty"`
}

// ErrSnapshotCorrupt is wrapped by the RUNTIME_ERROR of a restore (or of
// the resume of a hibernated box) whose snapshot files differ from what
// the checkpoint saved: the Manager seals each snapshot's directory at
// checkpoint and verifies it before the driver reads it.
var ErrSnapshotCorrupt = fmt.Errorf("snapshot files modified since the checkpoint: %w", ErrRuntime)

// MaxFork is the largest count Snapshotter.Fork accepts in one call.
const MaxFork = 16

// Snapshotter is implemented by services that save and restore boxes with
// their memory (the Manager with a driver that can, and client). It is
// separate from Service so that services without snapshots stay complete.
type Snapshotter interface {
	// Checkpoint saves a running box, memory and files, as a new snapshot.
	// Errors: BOX_NOT_FOUND, BOX_NOT_RUNNING, BOX_BUSY (execs or attach
	// sessions run in it), VALIDATION_ERROR (the driver cannot save this
	// box), RUNTIME_ERROR.
	Checkpoint(ctx context.Context, box string, opts CheckpointOptions) (*Snapshot, error)
	// Snapshots lists the snapshots, newest first.
	Snapshots(ctx context.Context) ([]*Snapshot, error)
	// GetSnapshot returns one snapshot. Errors: SNAPSHOT_NOT_FOUND.
	GetSnapshot(ctx context.Context, id string) (*Snapshot, error)
	// RemoveSnapshot deletes a snapshot and its files. Errors:
	// SNAPSHOT_NOT_FOUND.
	RemoveSnapshot(ctx context.Context, id string) error
	// Restore makes a new running box from a snapshot: its processes
	// continue from the saved memory, its files are a private copy of the
	// saved files. Errors: SNAPSHOT_NOT_FOUND, NAME_ALREADY_EXISTS,
	// RESOURCE_EXCEEDED, RUNTIME_ERROR (including a host whose CPU lacks
	// features the snapshot was taken with).
	Restore(ctx context.Context, snapshot string, spec RestoreSpec) (*Box, error)
	// Fork makes n new running boxes from the current state of a running
	// box, which keeps running. Errors: as Checkpoint and Restore, and
	// VALIDATION_ERROR for n < 1 or n > MaxFork.
	Fork(ctx context.Context, box string, n int) ([]*Box, error)
	// Hibernate saves a running box with its memory and frees it: the box
	// is stopped (its Lifetime says hibernated) and the next exec, copy,
	// attach or start resumes it where it was. Errors: as Checkpoint.
	Hibernate(ctx context.Context, box string) (*Box, error)
}
