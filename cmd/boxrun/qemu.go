package main

import (
	"log/slog"
	"path/filepath"

	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/sandbox"
)

// openQEMU makes the QEMU micro-VM driver (state in <state>/qemu; QEMU, the
// guest kernel and the agent are found as qemu.Config documents).
func openQEMU(stateDir string, log *slog.Logger) (sandbox.Driver, error) {
	return qemu.New(qemu.Config{Dir: filepath.Join(stateDir, "qemu"), Logger: log})
}
