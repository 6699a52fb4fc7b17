package gvisor_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
)

// Snapshot benchmarks (issue 14): Manager paths over real gVisor, each
// against a cold Manager.Create of the same image in the same run.

// coldCreateFirstOutput times Manager.Create up to the first output of an
// exec, then removes the box (untimed).
func coldCreateFirstOutput(b *testing.B, m *boxrun.Manager, rootfs string) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + rootfs, CPU: 1, MemoryMB: 256, Workdir: "/"})
	if err != nil {
		b.Fatal(err)
	}
	firstOutput(b, m, box.ID)
	elapsed := time.Since(start)
	if err := m.Remove(ctx, box.ID, true); err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// firstOutput runs `echo hi` in box and returns when its output arrives.
func firstOutput(b *testing.B, m *boxrun.Manager, box string) time.Duration {
	b.Helper()
	start := time.Now()
	fw := &firstWrite{ch: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := m.Exec(context.Background(), box, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, fw, nil)
		done <- err
	}()
	<-fw.ch
	d := time.Since(start)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return d
}

// fillCmd writes mib MiB of random bytes into the box's tmpfs mounts,
// which live in the sandbox's memory: /dev/shm and /dev are 64 MiB each
// (the box cannot mount more), so 60 MiB go to each at most.
func fillCmd(mib int) string {
	var parts []string
	for i, dir := range []string{"/dev/shm", "/dev"} {
		n := min(mib, 60)
		if n <= 0 {
			break
		}
		parts = append(parts, fmt.Sprintf("head -c %d /dev/urandom > %s/fill%d", n<<20, dir, i))
		mib -= n
	}
	return strings.Join(parts, " && ") + " && echo ok"
}

// BenchmarkSnapshotCheckpoint: Checkpoint (leave running) of a box with
// 16 or 120 MiB of touched, incompressible memory (tmpfs files live in the
// sandbox's memory; 120 MiB is what the box's two 64 MiB tmpfs mounts
// hold); reports the snapshot size, and the ratio to a cold create →
// first output in the same run.
func BenchmarkSnapshotCheckpoint(b *testing.B) {
	for _, mib := range []int{16, 120} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			m, box, rootfs, _ := newBenchManager(b)
			ctx := context.Background()
			var out bytes.Buffer
			e, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c",
				fillCmd(mib)}}, &out, &out)
			if err != nil || e.Status != boxapi.ExecSucceeded {
				b.Fatal(e, err, out.String())
			}
			var ckpt, cold time.Duration
			var size int64
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				s, err := m.Checkpoint(ctx, box.ID, boxapi.CheckpointOptions{LeaveRunning: true})
				if err != nil {
					b.Fatal(err)
				}
				ckpt += time.Since(start)
				size = s.SizeBytes
				b.StopTimer()
				if err := m.RemoveSnapshot(ctx, s.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cold += coldCreateFirstOutput(b, m, rootfs)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(ckpt), "ckpt-ms/op")
			b.ReportMetric(ms(cold), "cold-ms/op")
			b.ReportMetric(float64(ckpt)/float64(cold), "ratio")
			b.ReportMetric(float64(size)/(1<<20), "snap-MiB")
		})
	}
}

// BenchmarkSnapshotRestore: Restore → first exec output vs a cold Create →
// first exec output of the same image.
func BenchmarkSnapshotRestore(b *testing.B) {
	m, box, rootfs, _ := newBenchManager(b)
	ctx := context.Background()
	s, err := m.Checkpoint(ctx, box.ID, boxapi.CheckpointOptions{LeaveRunning: true})
	if err != nil {
		b.Fatal(err)
	}
	var restore, cold time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r, err := m.Restore(ctx, s.ID, boxapi.RestoreSpec{})
		if err != nil {
			b.Fatal(err)
		}
		firstOutput(b, m, r.ID)
		restore += time.Since(start)
		b.StopTimer()
		if err := m.Remove(ctx, r.ID, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cold += coldCreateFirstOutput(b, m, rootfs)
	}
	report(b, restore, cold)
}

// BenchmarkSnapshotFork4: Fork(4) until each fork has answered an exec, vs
// 4 cold creates (sequential, as Fork restores sequentially) to their
// first output.
func BenchmarkSnapshotFork4(b *testing.B) {
	m, box, rootfs, _ := newBenchManager(b)
	ctx := context.Background()
	var fork, cold time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		forks, err := m.Fork(ctx, box.ID, 4)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range forks {
			firstOutput(b, m, f.ID)
		}
		fork += time.Since(start)
		b.StopTimer()
		for _, f := range forks {
			if err := m.Remove(ctx, f.ID, true); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for range 4 {
			cold += coldCreateFirstOutput(b, m, rootfs)
		}
	}
	report(b, fork, cold)
}
