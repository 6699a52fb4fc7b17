package boxapi

// ServerMetrics is a snapshot of a Manager for operators (Manager.Metrics;
// httpapi serves it at /metrics in the Prometheus text format).
type ServerMetrics struct {
	BoxesByStatus  map[BoxStatus]int64 // every status, 0 included
	RunningExecs   int64
	JournalEntries int64
	DatabaseBytes  int64 // the SQLite files (database and WAL)
	FileWatches    int64
	Boxes          []BoxUsage // running boxes whose driver reports stats
}

// BoxUsage is the resource use of one running box in a ServerMetrics.
type BoxUsage struct {
	ID, Name         string
	CPUSeconds       float64 // cumulative CPU time
	MemoryBytes      int64
	MemoryLimitBytes int64
}
