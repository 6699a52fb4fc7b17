package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"
)

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	r := e.do("GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, r.body)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (0 when there is none), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics scrapes /metrics before and after a scripted workload: the
// counters move by exactly the workload's numbers, per-box series exist for
// running boxes and are gone once a box is removed, and the output parses
// with the Prometheus text parser. /metrics follows the API's rules:
// cross-origin requests are refused.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	before := scrape(t, e)
	type key struct{ name, op, code string }
	counters := []key{
		{"boxrun_api_requests_total", "create", "OK"},
		{"boxrun_api_requests_total", "create", "VALIDATION_ERROR"},
		{"boxrun_api_requests_total", "exec", "OK"},
		{"boxrun_api_requests_total", "exec", "BOX_NOT_FOUND"},
		{"boxrun_api_request_duration_seconds", "create", ""},
		{"boxrun_api_request_duration_seconds", "exec", ""},
	}
	get := func(fams map[string]*dto.MetricFamily, k key) float64 {
		labels := map[string]string{"op": k.op}
		if k.code != "" {
			labels["code"] = k.code
		}
		v, _ := value(fams, k.name, labels)
		return v
	}
	running0, _ := value(before, "boxrun_boxes", map[string]string{"status": "running"})

	// The workload: 2 creates, 1 bad create, 3 execs, 1 exec in a missing box.
	a := e.createBox(`{"image":"busybox","name":"ma"}`)
	b := e.createBox(`{"image":"busybox","name":"mb"}`)
	if r := e.do("POST", "/v1/boxes", `{"image":"busybox","cpu":-1}`); r.status < 400 {
		t.Fatalf("bad create: %d", r.status)
	}
	for _, box := range []string{a.ID, a.ID, b.ID} {
		e.waitExec(e.startExec(box, "true").ID)
	}
	if r := e.do("POST", "/v1/boxes/nope/exec", `{"cmd":["true"]}`); r.status != 404 {
		t.Fatalf("exec in a missing box: %d", r.status)
	}

	after := scrape(t, e)
	want := []float64{2, 1, 3, 1, 3, 4}
	for i, k := range counters {
		if d := get(after, k) - get(before, k); d != want[i] {
			t.Errorf("%s{op=%s,code=%s} moved by %v, want %v", k.name, k.op, k.code, d, want[i])
		}
	}
	if v, _ := value(after, "boxrun_boxes", map[string]string{"status": "running"}); v-running0 != 2 {
		t.Errorf("running boxes moved by %v, want 2", v-running0)
	}
	for _, name := range []string{"boxrun_execs_running", "boxrun_journal_entries", "boxrun_database_bytes", "boxrun_file_watches"} {
		if _, ok := value(after, name, nil); !ok {
			t.Errorf("no %s", name)
		}
	}
	if v, _ := value(after, "boxrun_database_bytes", nil); v <= 0 {
		t.Errorf("database bytes %v", v)
	}
	for _, box := range []string{a.ID, b.ID} {
		for _, name := range []string{"boxrun_box_cpu_seconds_total", "boxrun_box_memory_limit_bytes"} {
			if _, ok := value(after, name, map[string]string{"box_id": box}); !ok {
				t.Errorf("no %s for box %s", name, box)
			}
		}
	}

	if r := e.do("DELETE", "/v1/boxes/"+a.ID+"?force=true", ""); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	gone := scrape(t, e)
	for name, f := range gone {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetValue() == a.ID {
					t.Errorf("removed box still has series %s", name)
				}
			}
		}
	}
	if _, ok := value(gone, "boxrun_box_cpu_seconds_total", map[string]string{"box_id": b.ID}); !ok {
		t.Errorf("the kept box lost its series")
	}

	// Same rules as the API: another origin is refused.
	req, _ := http.NewRequest("GET", e.url+"/metrics", nil)
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin /metrics: %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(string(e.do("GET", "/metrics", "").body), "# HELP boxrun_api_requests_total") {
		t.Errorf("no help text")
	}
}
