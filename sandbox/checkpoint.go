package sandbox

import "context"

// CheckpointOptions tune Checkpointer.Checkpoint.
type CheckpointOptions struct {
	// LeaveRunning keeps the sandbox running after the checkpoint; by
	// default it is stopped (its files stay, as after Driver.Stop).
	LeaveRunning bool
}

// Checkpointer is implemented by drivers that can save a running sandbox's
// memory and files and bring them back in a new sandbox (driver/gvisor and
// driver/qemu do).
// The Manager type-asserts it; drivers without it refuse snapshots.
type Checkpointer interface {
	// Checkpoint saves the running sandbox of handle, memory and files,
	// into dir, which must not exist yet; the driver owns its layout. A
	// sandbox that is not running is an error wrapping boxapi.ErrConflict.
	// On failure dir is removed and the sandbox is left as it was when
	// possible (running with LeaveRunning).
	Checkpoint(ctx context.Context, handle, dir string, opts CheckpointOptions) error

	// Restore makes a new sandbox from a checkpoint dir written by
	// Checkpoint: its processes continue from the saved memory, and its
	// files are a private copy of the saved files (dir is only read, so one
	// checkpoint restores any number of times). spec gives the new box's ID;
	// the shape, image and env are the checkpoint's. On failure nothing is
	// left behind.
	Restore(ctx context.Context, dir string, spec Spec) (handle string, err error)
}
