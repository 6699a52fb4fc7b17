package gvisor_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
)

// The Manager benchmarks measure the whole library path (SQLite records,
// every output chunk stored as an event, the event bus) over the gVisor
// driver, against bare runsc doing the same work in the same run.

func newBenchManager(b *testing.B) (*boxrun.Manager, *boxapi.Box, string, *gvisor.Driver) {
	b.Helper()
	d, _ := newDriver(b)
	m := newManager(b, d)
	rootfs := busyboxRootfs(b)
	box, err := m.Create(context.Background(), boxapi.BoxSpec{Image: "dir:" + rootfs, CPU: 2, MemoryMB: 512, Workdir: "/"})
	if err != nil {
		b.Fatal(err)
	}
	return m, box, rootfs, d
}

// BenchmarkManagerExec: Manager.Exec round trip (record, start, output
// stored and streamed, exit stored) vs a bare `runsc exec` in the same box.
func BenchmarkManagerExec(b *testing.B) {
	m, box, _, d := newBenchManager(b)
	runsc, global := d.BareRunsc()
	ctx := context.Background()
	var lib, bare time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		e, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, io.Discard, nil)
		if err != nil || e.Status != boxapi.ExecSucceeded {
			b.Fatal(e, err)
		}
		lib += time.Since(start)

		bare += bareExec(b, d.BareAttr(), runsc, global, box.Handle, []string{"echo", "hi"}, 3)
	}
	report(b, lib, bare)
}

// BenchmarkManagerCreate: Manager.Create (record, image resolve, sandbox)
// until the first output of an exec, vs a bare `runsc run` to its output.
func BenchmarkManagerCreate(b *testing.B) {
	m, _, rootfs, d := newBenchManager(b)
	runsc, global := d.BareRunsc()
	bundles := b.TempDir()
	ctx := context.Background()
	var lib, bare time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + rootfs, CPU: 1, MemoryMB: 256, Workdir: "/"})
		if err != nil {
			b.Fatal(err)
		}
		fw := &firstWrite{ch: make(chan struct{}, 1)}
		done := make(chan error, 1)
		go func() {
			_, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, fw, nil)
			done <- err
		}()
		<-fw.ch
		lib += time.Since(start)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Remove(ctx, box.ID, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		bare += bareRunFirstOutput(b, d, runsc, global, bundles, fmt.Sprintf("mbare%011d", i), rootfs)
	}
	report(b, lib, bare)
}

// BenchmarkManagerThroughput: 256 MiB of stdout through Manager.Exec, every
// chunk stored in SQLite and published, vs a bare `runsc exec` read from a
// pipe and discarded.
func BenchmarkManagerThroughput(b *testing.B) {
	size := benchSize()
	m, box, _, d := newBenchManager(b)
	runsc, global := d.BareRunsc()
	ctx := context.Background()
	cmdline := []string{"dd", "if=/dev/zero", "bs=65536", fmt.Sprint("count=", size/65536)}
	run := func(relay bool) time.Duration {
		d.SetRelayOutput(relay)
		defer d.SetRelayOutput(false)
		var n countWriter
		start := time.Now()
		e, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: cmdline}, &n, nil)
		if err != nil || e.Status != boxapi.ExecSucceeded || int64(n) != size {
			b.Fatal(e, err, n)
		}
		return time.Since(start)
	}
	var lib, relay, bare time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		lib += run(false)
		bare += bareExec(b, d.BareAttr(), runsc, global, box.Handle, cmdline, size)
		relay += run(true)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(lib), "box-MB/s")
	b.ReportMetric(mbps(relay), "relay-MB/s")
	b.ReportMetric(mbps(bare), "bare-MB/s")
	b.ReportMetric(mbps(lib)/mbps(bare), "ratio")
	b.ReportMetric(mbps(relay)/mbps(bare), "relay-ratio")
}

// BenchmarkHTTPExec: an exec round trip through the HTTP API (client.Exec:
// POST exec, the SSE event stream to the exit) on loopback vs a bare
// `runsc exec` in the same box.
func BenchmarkHTTPExec(b *testing.B) {
	m, c, d := newHTTPManager(b)
	ctx := context.Background()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(b), CPU: 1, MemoryMB: 256, Workdir: "/"})
	if err != nil {
		b.Fatal(err)
	}
	runsc, global := d.BareRunsc()
	var api, bare time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, io.Discard, nil)
		if err != nil || e.Status != boxapi.ExecSucceeded {
			b.Fatal(e, err)
		}
		api += time.Since(start)

		bare += bareExec(b, d.BareAttr(), runsc, global, box.Handle, []string{"echo", "hi"}, 3)
	}
	report(b, api, bare)
}
