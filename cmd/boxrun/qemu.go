package main

import (
	"fmt"
	"log/slog"

	"github.com/boxrun/boxrun"
)

// openQEMU makes the QEMU micro-VM driver.
func openQEMU(stateDir string, log *slog.Logger) (boxrun.Driver, error) {
	_ = stateDir
	_ = log
	return nil, fmt.Errorf("the qemu driver is not available in this build yet: %w", boxrun.ErrInvalid)
}
