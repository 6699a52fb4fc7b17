//go:build e2e_k8s

package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/sandbox"
)

// benchDrivers are the cluster driver and the local gVisor driver (the
// baseline of the ratios in BENCHMARKS.md), on the same machine.
func benchDrivers(b *testing.B) map[string]sandbox.Driver {
	rc, cs := cluster(b)
	ns := namespace(b, cs)
	k := newDriver(b, rc, ns)
	b.Cleanup(func() { k.Prune(context.Background(), nil); k.Close() })
	runsc := os.Getenv("BOXRUN_RUNSC")
	if runsc == "" {
		runsc = "/work/bin/runsc"
	}
	g, err := gvisor.New(gvisor.Config{Dir: filepath.Join(b.TempDir(), "gvisor"), Runsc: runsc, InitPath: helperBin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Prune(context.Background(), nil); g.Close() })
	return map[string]sandbox.Driver{"kubernetes": k, "gvisor": g}
}

// create → first exec output, per driver.
func BenchmarkCreateFirstExec(b *testing.B) {
	img := boxruntest.BusyboxImage(b)
	ds := benchDrivers(b)
	for _, name := range []string{"gvisor", "kubernetes"} {
		d := ds[name]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "bench", Image: img, Workdir: "/root"})
				if err != nil {
					b.Fatal(err)
				}
				r := boxruntest.Run(b, d, h, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}}, time.Minute)
				if r.Stdout != "hi\n" {
					b.Fatalf("%+v", r)
				}
				b.StopTimer()
				d.Remove(context.Background(), h)
				b.StartTimer()
			}
		})
	}
}

// One exec round trip in a running box, per driver.
func BenchmarkExecRoundTrip(b *testing.B) {
	img := boxruntest.BusyboxImage(b)
	ds := benchDrivers(b)
	for _, name := range []string{"gvisor", "kubernetes"} {
		d := ds[name]
		h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "bench", Image: img, Workdir: "/root"})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				r := boxruntest.Run(b, d, h, sandbox.ProcessSpec{Cmd: []string{"true"}}, time.Minute)
				if r.Code != 0 {
					b.Fatalf("%+v", r)
				}
			}
		})
		d.Remove(context.Background(), h)
	}
}

// How create latency grows with concurrent creates on the cluster: the
// metric is the mean wall time per box of a batch of n concurrent Creates
// (and the whole batch).
func BenchmarkConcurrentCreate(b *testing.B) {
	img := boxruntest.BusyboxImage(b)
	d := benchDrivers(b)["kubernetes"]
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total, batch time.Duration
			for range b.N {
				var wg sync.WaitGroup
				var mu sync.Mutex
				var handles []string
				start := time.Now()
				errs := make(chan error, n)
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						t0 := time.Now()
						h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "bench", Image: img, Workdir: "/root"})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						total += time.Since(t0)
						handles = append(handles, h)
						mu.Unlock()
					}()
				}
				wg.Wait()
				batch += time.Since(start)
				close(errs)
				for err := range errs {
					b.Error(err)
				}
				b.StopTimer()
				for _, h := range handles {
					d.Remove(context.Background(), h)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(n*b.N), "ms/create")
			b.ReportMetric(float64(batch.Milliseconds())/float64(b.N), "ms/batch")
		})
	}
}
