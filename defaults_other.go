//go:build !linux

package boxrun

import (
	"fmt"

	"github.com/boxrun/boxrun/sandbox"
)

// defaultDriver: outside Linux there is no default driver.
func defaultDriver(dir string, cfg *config) (sandbox.Driver, error) {
	return nil, fmt.Errorf("no default driver on this system (gVisor needs Linux; pass WithDriver): %w", ErrInvalid)
}
