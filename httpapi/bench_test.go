package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
	"go.uber.org/goleak"
)

// Load shape of BenchmarkLoad.
const (
	benchSubscribers = 100 // SSE clients streaming a chatty exec
	benchExecs       = 50  // execs running at once / exec-create workers
	benchListWorkers = 8   // concurrent GET /v1/boxes clients
)

// latencies measures n requests spread over workers; it fails b on any error.
func latencies(b *testing.B, n, workers int, do func() error) (perSec float64, p99 time.Duration) {
	b.Helper()
	var next atomic.Int64
	all := make([][]time.Duration, workers)
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := do(); err != nil {
					failed.Store(err)
					return
				}
				all[w] = append(all[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	merged := slices.Concat(all...)
	slices.Sort(merged)
	return float64(len(merged)) / elapsed.Seconds(), merged[min(len(merged)-1, len(merged)*99/100)]
}

// request sends one request and fails unless the status is want.
func request(c *http.Client, method, url, body string, want int) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != want {
		err = fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, data)
	}
	return err
}

// BenchmarkLoad runs the API on loopback with 100 SSE subscribers on a
// chatty exec and 50 running execs, and reports req/s and p99 latency of
// GET /v1/boxes and of exec create, each also as a ratio to a bare net/http
// handler returning the same bytes, measured in the same run.
func BenchmarkLoad(b *testing.B) {
	defer goleak.VerifyNone(b, goleak.IgnoreCurrent())
	dir := b.TempDir()
	mgr, err := boxrun.Open(dir, boxrun.WithDriver(boxruntest.NewFakeDriver(dir+"/fake")), boxrun.WithImages(nil), boxrun.WithLimits(256, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()
	srv := httptest.NewServer(httpapi.New(mgr))
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: 256}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	ctx := context.Background()

	var boxID string
	for i := range 5 {
		box, err := mgr.Create(ctx, boxapi.BoxSpec{Image: "busybox", Name: fmt.Sprint("bench", i)})
		if err != nil {
			b.Fatal(err)
		}
		boxID = box.ID
	}
	listBody, err := io.ReadAll(must(client.Get(srv.URL + "/v1/boxes")).Body)
	if err != nil {
		b.Fatal(err)
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(listBody)
	}))
	defer bare.Close()

	// 50 running execs and one chatty one with 100 SSE subscribers.
	var running []string
	for range benchExecs {
		ex, err := mgr.StartExec(ctx, boxID, boxapi.ExecRequest{Cmd: []string{"sleep", "600"}})
		if err != nil {
			b.Fatal(err)
		}
		running = append(running, ex.ID)
	}
	chatty, err := mgr.StartExec(ctx, boxID, boxapi.ExecRequest{Cmd: []string{"sh", "-c",
		"i=0; while :; do echo line $i; i=$((i+1)); sleep 0.02; done"}})
	if err != nil {
		b.Fatal(err)
	}
	var subs sync.WaitGroup
	subErrs := make(chan error, benchSubscribers)
	for range benchSubscribers {
		subs.Go(func() { subErrs <- readGapless(client, srv.URL+"/v1/boxes/"+boxID+"/exec/"+chatty.ID+"/events") })
	}

	listURL := srv.URL + "/v1/boxes"
	getList := func() error { return request(client, "GET", listURL, "", 200) }
	getBare := func() error { return request(client, "GET", bare.URL, "", 200) }
	execURL := srv.URL + "/v1/boxes/" + boxID + "/exec"
	postExec := func() error { return request(client, "POST", execURL, `{"cmd":["true"]}`, 201) }
	postBare := func() error { return request(client, "POST", bare.URL, `{"cmd":["true"]}`, 200) }

	b.Run("ListBoxes", func(b *testing.B) {
		baseRate, baseP99 := latencies(b, 2000, benchListWorkers, getBare)
		b.ResetTimer()
		rate, p99 := latencies(b, max(b.N, 200), benchListWorkers, getList)
		b.StopTimer()
		report(b, rate, p99, baseRate, baseP99)
	})
	b.Run("ExecCreate", func(b *testing.B) {
		baseRate, baseP99 := latencies(b, 2000, benchExecs, postBare)
		b.ResetTimer()
		rate, p99 := latencies(b, max(b.N, 100), benchExecs, postExec)
		b.StopTimer()
		report(b, rate, p99, baseRate, baseP99)
	})

	// End the load: every subscriber must have seen a complete stream.
	if _, err := mgr.CancelExec(ctx, chatty.ID); err != nil {
		b.Fatal(err)
	}
	for _, id := range running {
		mgr.CancelExec(ctx, id)
	}
	subs.Wait()
	close(subErrs)
	for err := range subErrs {
		if err != nil {
			b.Fatalf("SSE subscriber: %v", err)
		}
	}
	srv.Close()
	bare.Close()
	transport.CloseIdleConnections()
	if err := mgr.Close(); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, rate float64, p99 time.Duration, baseRate float64, baseP99 time.Duration) {
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(rate/baseRate, "req/s-vs-bare")
	b.ReportMetric(float64(p99)/float64(baseP99), "p99-vs-bare")
	b.ReportMetric(0, "ns/op") // wall time per op is not meaningful for a concurrent load
}

// readGapless reads an exec's SSE stream to its end and checks that seqs
// are 0, 1, 2, ... with the exit event last.
func readGapless(c *http.Client, url string) error {
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	want, exited := int64(0), false
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("event: exit")) {
			exited = true
		}
		if i := bytes.Index(line, []byte(`"seq":`)); i >= 0 {
			var seq int64
			fmt.Sscanf(string(line[i+6:]), "%d", &seq)
			if seq != want {
				return fmt.Errorf("seq %d, want %d", seq, want)
			}
			want++
		}
	}
	if !exited {
		return fmt.Errorf("stream ended without exit after %d events: %v", want, sc.Err())
	}
	return sc.Err()
}

func must(res *http.Response, err error) *http.Response {
	if err != nil {
		panic(err)
	}
	return res
}
