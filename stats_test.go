package boxrun_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// Two stats streams of one box (two dashboards) each compute CPU use over
// their own interval: a box burning one core never shows more cores than
// the host has, however close together the streams sample (CPU counters
// advance in ticks; a window of a few microseconds between two readers
// once turned a tick into hundreds of cores).
func TestStatsStream_TwoReaders(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := m.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "while :; do :; done"}}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	var mu sync.Mutex
	var samples []float64
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.StatsStream(sctx, b.ID, boxrun.StatsOptions{Interval: boxrun.MinStatsInterval}, func(s *boxrun.Stats) error {
				mu.Lock()
				samples = append(samples, s.CPUCores)
				mu.Unlock()
				return nil
			})
		}()
	}
	// A one-off reader in between.
	for sctx.Err() == nil {
		if s, err := m.Stats(ctx, b.ID); err == nil {
			mu.Lock()
			samples = append(samples, s.CPUCores)
			mu.Unlock()
		}
		time.Sleep(37 * time.Millisecond)
	}
	wg.Wait()
	limit := float64(runtime.NumCPU()) + 0.5
	mu.Lock()
	defer mu.Unlock()
	if len(samples) < 10 {
		t.Fatalf("only %d samples", len(samples))
	}
	for _, c := range samples {
		if c > limit {
			t.Fatalf("a sample shows %.1f cores (host has %d); samples %v", c, runtime.NumCPU(), samples)
		}
	}
}
