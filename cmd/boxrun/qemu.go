package main

import (
	"log/slog"
	"path/filepath"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/qemu"
)

// openQEMU makes the QEMU micro-VM driver (state in <state>/qemu; QEMU, the
// guest kernel and the agent are found as qemu.Config documents).
func openQEMU(stateDir string, log *slog.Logger) (boxrun.Driver, error) {
	return qemu.New(qemu.Config{Dir: filepath.Join(stateDir, "qemu"), Logger: log})
}
