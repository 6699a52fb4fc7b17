package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsSource is what /metrics needs beyond the API counters; the
// Manager has it (a remote client does not, and then /metrics serves the
// request counters only).
type metricsSource interface {
	Metrics(ctx context.Context) (*boxapi.ServerMetrics, error)
}

// serverMetrics are the Prometheus metrics of one Server, in a registry of
// its own (no package globals).
type serverMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // op, code
	latency  *prometheus.HistogramVec // op
	handler  http.Handler
}

// Operations counted by /metrics (the label "op").
const (
	opCreate = "create"
	opExec   = "exec"
	opPull   = "pull"
	opRun    = "run"
)

func newServerMetrics(svc boxapi.Service) *serverMetrics {
	m := &serverMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "boxrun_api_requests_total",
		Help: "API operations (create, exec, pull, run) by outcome: code is OK or the error code.",
	}, []string{"op", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "boxrun_api_request_duration_seconds",
		Help:    "Latency of API operations (exec: until the exec started; run: until it finished).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"op"})
	m.reg.MustRegister(m.requests, m.latency)
	if src, ok := svc.(metricsSource); ok {
		m.reg.MustRegister(newManagerCollector(src))
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// opOf names the counted operation of a request, or "".
func opOf(method string, segs []string) string {
	if method != http.MethodPost || len(segs) < 2 || segs[0] != "v1" {
		return ""
	}
	switch {
	case len(segs) == 2 && segs[1] == "boxes":
		return opCreate
	case len(segs) == 2 && segs[1] == "run":
		return opRun
	case len(segs) == 2 && segs[1] == "images":
		return opPull
	case len(segs) == 4 && segs[1] == "boxes" && segs[3] == "exec":
		return opExec
	}
	return ""
}

// observe counts one operation.
func (m *serverMetrics) observe(op string, err error, d time.Duration) {
	code := "OK"
	if err != nil {
		_, env := toEnvelope(err)
		code = string(env.Code)
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// handleMetrics serves GET /metrics in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ params) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

// managerCollector turns a ServerMetrics snapshot into metrics at each
// scrape. Per-box series exist only for running boxes, so a removed (or
// stopped) box's series are gone at the next scrape.
type managerCollector struct {
	src                                                metricsSource
	descBoxes, descExecs, descJourn, descDB, descWatch *prometheus.Desc
	descCPU, descMem, descLimit, descUp                *prometheus.Desc
}

func newManagerCollector(src metricsSource) *managerCollector {
	box := []string{"box_id", "name"}
	return &managerCollector{
		src:       src,
		descBoxes: prometheus.NewDesc("boxrun_boxes", "Boxes by status.", []string{"status"}, nil),
		descExecs: prometheus.NewDesc("boxrun_execs_running", "Execs running now.", nil, nil),
		descJourn: prometheus.NewDesc("boxrun_journal_entries", "Entries in the event journal.", nil, nil),
		descDB:    prometheus.NewDesc("boxrun_database_bytes", "Size of the SQLite database files.", nil, nil),
		descWatch: prometheus.NewDesc("boxrun_file_watches", "File watches held by the server.", nil, nil),
		descCPU:   prometheus.NewDesc("boxrun_box_cpu_seconds_total", "CPU time used by a running box.", box, nil),
		descMem:   prometheus.NewDesc("boxrun_box_memory_bytes", "Memory in use by a running box.", box, nil),
		descLimit: prometheus.NewDesc("boxrun_box_memory_limit_bytes", "Memory limit of a running box.", box, nil),
		descUp:    prometheus.NewDesc("boxrun_metrics_error", "1 when the last snapshot of the server failed.", nil, nil),
	}
}

func (c *managerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.descBoxes, c.descExecs, c.descJourn, c.descDB, c.descWatch, c.descCPU, c.descMem, c.descLimit, c.descUp} {
		ch <- d
	}
}

func (c *managerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sm, err := c.src.Metrics(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.descUp, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.descUp, prometheus.GaugeValue, 0)
	for st, n := range sm.BoxesByStatus {
		ch <- prometheus.MustNewConstMetric(c.descBoxes, prometheus.GaugeValue, float64(n), strings.ToLower(string(st)))
	}
	ch <- prometheus.MustNewConstMetric(c.descExecs, prometheus.GaugeValue, float64(sm.RunningExecs))
	ch <- prometheus.MustNewConstMetric(c.descJourn, prometheus.GaugeValue, float64(sm.JournalEntries))
	ch <- prometheus.MustNewConstMetric(c.descDB, prometheus.GaugeValue, float64(sm.DatabaseBytes))
	ch <- prometheus.MustNewConstMetric(c.descWatch, prometheus.GaugeValue, float64(sm.FileWatches))
	for _, b := range sm.Boxes {
		ch <- prometheus.MustNewConstMetric(c.descCPU, prometheus.CounterValue, b.CPUSeconds, b.ID, b.Name)
		if b.MemoryBytes >= 0 {
			ch <- prometheus.MustNewConstMetric(c.descMem, prometheus.GaugeValue, float64(b.MemoryBytes), b.ID, b.Name)
		}
		if b.MemoryLimitBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.descLimit, prometheus.GaugeValue, float64(b.MemoryLimitBytes), b.ID, b.Name)
		}
	}
}
