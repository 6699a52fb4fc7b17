package sandbox

import (
	"context"
	"time"
)

// Stats is what a Statser reports about a sandbox. Unknown values
// are -1.
type Stats struct {
	CPUTime          time.Duration // cumulative CPU time of everything the sandbox runs
	MemoryBytes      int64
	MemoryPeakBytes  int64
	MemoryLimitBytes int64
	Processes        int64
	DiskBytes        int64
	NetRxBytes       int64
	NetTxBytes       int64
}

// Statser is implemented by drivers that can measure a running sandbox.
// The Manager type-asserts it; boxrun.Manager.Stats of a box whose driver lacks
// it fails with RUNTIME_ERROR. Stats must be cheap (it is
// called once a second per open stream) and safe to call concurrently with
// every other method; a sandbox that is not running is an error wrapping
// boxapi.ErrNotFound or boxapi.ErrConflict.
type Statser interface {
	Stats(ctx context.Context, handle string) (Stats, error)
}
