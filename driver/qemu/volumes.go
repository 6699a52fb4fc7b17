package qemu

import (
	"context"

	"github.com/boxrun/boxrun"
)

// startVolumes starts one virtiofsd per volume. Callers hold b.mu.
func (d *Driver) startVolumes(ctx context.Context, b *box) error {
	if len(b.state.Volumes) > 0 {
		return boxrun.Errorf(boxrun.CodeValidationError, "qemu: volumes are not supported yet")
	}
	return nil
}

// cleanVolumes removes the sockets of the box's volumes.
func (d *Driver) cleanVolumes(b *box) {}
