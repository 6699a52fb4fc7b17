package boxrun

import (
	"fmt"
	"path/filepath"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/sandbox"
)

// defaultDriver is the driver of a Manager opened without WithDriver: gVisor
// with its state under dir/gvisor, runsc found as gvisor.Config documents.
func defaultDriver(dir string, cfg *config) (sandbox.Driver, error) {
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor"), Logger: cfg.logger})
	if err != nil {
		return nil, fmt.Errorf("default gVisor driver (or pass WithDriver): %w", err)
	}
	return d, nil
}
