package boxapi

import "time"

// Stats is one resource sample of a box (Manager.Stats, the stats API
// extension). Byte counts are bytes; a field the driver cannot measure is
// -1 (NetRxBytes and NetTxBytes are also -1 for a box without network).
type Stats struct {
	BoxID string    `json:"box_id"`
	Time  time.Time `json:"time"`
	// CPUCores is the CPU used since the previous sample (or over the
	// sampling window of a one-shot Stats), in cores: 1.5 means one and a
	// half cores busy.
	CPUCores float64 `json:"cpu_cores"`
	// CPUTimeNS is the box's cumulative CPU time in nanoseconds.
	CPUTimeNS        int64 `json:"cpu_time_ns"`
	MemoryBytes      int64 `json:"memory_bytes"`       // in use now
	MemoryPeakBytes  int64 `json:"memory_peak_bytes"`  // highest since the sandbox started
	MemoryLimitBytes int64 `json:"memory_limit_bytes"` // the box's limit
	Processes        int64 `json:"processes"`          // processes in the box
	DiskBytes        int64 `json:"disk_bytes"`         // used by the box's writable layer
	NetRxBytes       int64 `json:"net_rx_bytes"`
	NetTxBytes       int64 `json:"net_tx_bytes"`
}

// StatsOptions tunes Service.StatsStream.
type StatsOptions struct {
	// Interval between samples; 0 means DefaultStatsInterval. Values below
	// MinStatsInterval are raised to it.
	Interval time.Duration
}

// Sampling intervals of StatsStream.
const (
	DefaultStatsInterval = time.Second
	MinStatsInterval     = 100 * time.Millisecond
)
