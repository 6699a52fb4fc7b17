package gvisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
)

// openStats opens an HTTP stats stream of box at interval and returns once
// its first sample arrived; the returned func closes it.
func openStats(c *client.Client, box string, interval time.Duration) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	var serr error
	go func() {
		defer close(done)
		serr = c.StatsStream(ctx, box, boxapi.StatsOptions{Interval: interval}, func(*boxapi.Stats) error {
			once.Do(func() { close(first) })
			return nil
		})
	}()
	stop := func() { cancel(); <-done }
	select {
	case <-first:
		return stop, nil
	case <-done:
		return stop, fmt.Errorf("the stats stream of %s ended before its first sample: %v", box, serr)
	case <-time.After(5 * time.Minute):
		return stop, fmt.Errorf("no stats sample of %s within 5 min", box)
	}
}

// BenchmarkStatsExec: the cost of watching a box. An exec round trip
// through the HTTP API (as BenchmarkHTTPExec) with a stats stream of that
// box open vs without one, interleaved in the same run so load drift hits
// both; the stream at the dashboard's 1 s interval and at the shortest,
// 100 ms. ratio = with / without (target <= 1.05).
func BenchmarkStatsExec(b *testing.B) {
	for _, iv := range []time.Duration{time.Second, boxapi.MinStatsInterval} {
		b.Run("interval="+iv.String(), func(b *testing.B) { benchStatsExec(b, iv) })
	}
}

func benchStatsExec(b *testing.B, interval time.Duration) {
	m, c, _ := newHTTPManager(b)
	ctx := context.Background()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(b), CPU: 1, MemoryMB: 256, Workdir: "/"})
	if err != nil {
		b.Fatal(err)
	}
	exec := func() time.Duration {
		start := time.Now()
		e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, io.Discard, nil)
		if err != nil || e.Status != boxapi.ExecSucceeded {
			b.Fatal(e, err)
		}
		return time.Since(start)
	}
	exec() // warm up
	const round = 10
	var with, without time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range round {
			without += exec()
		}
		closeStats, err := openStats(c, box.ID, interval)
		if err != nil {
			closeStats()
			b.Fatal(err)
		}
		for range round {
			with += exec()
		}
		closeStats()
	}
	n := float64(b.N * round)
	b.ReportMetric(float64(with.Microseconds())/n, "with-stats-µs/exec")
	b.ReportMetric(float64(without.Microseconds())/n, "without-µs/exec")
	b.ReportMetric(float64(with)/float64(without), "ratio")
}

// BenchmarkStatsServerCPU: the server's CPU for 50 running boxes, each
// with a 1 s stats stream open over HTTP, vs the same server and boxes
// with no stream, over the same wall time (BOXRUN_BENCH_WINDOW, default
// 20 s, per phase). CPU is the test process's (the Manager and HTTP server
// run in it; the HTTP client side too, a small part) user+system time, and
// separately that of the runsc processes it waited for (gVisor's
// process count comes from `runsc events --stats`).
func BenchmarkStatsServerCPU(b *testing.B) {
	m, c, _ := newHTTPManager(b)
	ctx := context.Background()
	rootfs := busyboxRootfs(b)
	const boxes = 50
	ids := make([]string, boxes)
	for i := range ids {
		box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + rootfs, CPU: 1, MemoryMB: 128, Workdir: "/"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = box.ID
	}
	window := 20 * time.Second
	if v, err := time.ParseDuration(os.Getenv("BOXRUN_BENCH_WINDOW")); err == nil && v > 0 {
		window = v
	}
	usage := func() (self, children time.Duration) {
		var s, ch syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &s)
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ch)
		tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
		return tv(s.Utime) + tv(s.Stime), tv(ch.Utime) + tv(ch.Stime)
	}
	measure := func() (time.Duration, time.Duration) {
		s0, c0 := usage()
		time.Sleep(window)
		s1, c1 := usage()
		return s1 - s0, c1 - c0
	}
	b.ResetTimer()
	var idleSelf, idleKids, onSelf, onKids time.Duration
	for i := 0; i < b.N; i++ {
		s, k := measure()
		idleSelf, idleKids = idleSelf+s, idleKids+k
		// Opened together: 50 first samples (each a runsc call) at once
		// on a loaded host take a while; waiting for each in turn would
		// take longer still.
		closers := make([]func(), boxes)
		errs := make([]error, boxes)
		var wg sync.WaitGroup
		for j, id := range ids {
			wg.Go(func() { closers[j], errs[j] = openStats(c, id, time.Second) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			for _, cl := range closers {
				cl()
			}
			b.Fatal(err)
		}
		s, k = measure()
		onSelf, onKids = onSelf+s, onKids+k
		for _, cl := range closers {
			cl()
		}
	}
	w := window.Seconds() * float64(b.N)
	b.ReportMetric(onSelf.Seconds()/w, "server-cores-streams")
	b.ReportMetric(idleSelf.Seconds()/w, "server-cores-idle")
	b.ReportMetric(onKids.Seconds()/w, "runsc-cores-streams")
	b.ReportMetric(idleKids.Seconds()/w, "runsc-cores-idle")
	b.ReportMetric((onSelf-idleSelf).Seconds()/w/boxes*1000, "server-millicores/stream")
}
