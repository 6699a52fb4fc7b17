package qemu

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// BenchmarkCheckpoint: a box with 64 MiB of random bytes in its memory
// (/dev/shm, so zstd cannot shrink them) is checkpointed (LeaveRunning)
// and restored; restore → first exec output is compared with Create →
// first exec output, cold and from the template snapshot, in the same run.
// Reports the checkpoint's time and size (state file, disk copy blocks).
func BenchmarkCheckpoint(b *testing.B) {
	e := newBenchEnv(b)
	h := e.create(b)
	defer e.d.Remove(b.Context(), h)
	e.driverExec(b, h, "sh", "-c", "head -c 67108864 /dev/urandom > /dev/shm/fill")
	firstExec := func(d *Driver, h string) {
		p, err := d.Exec(b.Context(), h, sandbox.ProcessSpec{Cmd: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != 0 {
			b.Fatalf("exec: %d %v", code, err)
		}
	}
	tmp := b.TempDir()
	var ckpt, restore, cold, tmpl time.Duration
	var stateBytes, diskBytes int64
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(tmp, strconv.Itoa(i))
		t0 := time.Now()
		if err := e.d.Checkpoint(b.Context(), h, dir, sandbox.CheckpointOptions{LeaveRunning: true}); err != nil {
			b.Fatal(err)
		}
		ckpt += time.Since(t0)
		stateBytes += allocated(b, filepath.Join(dir, ckptState))
		diskBytes += allocated(b, filepath.Join(dir, diskFile))

		t0 = time.Now()
		f, err := e.d.Restore(b.Context(), dir, sandbox.Spec{BoxID: "bench-restore"})
		if err != nil {
			b.Fatal(err)
		}
		firstExec(e.d, f)
		restore += time.Since(t0)
		b.StopTimer()
		e.d.Remove(b.Context(), f)
		os.RemoveAll(dir)
		b.StartTimer()

		t0 = time.Now()
		c := e.createWith(b, e.cold)
		firstExec(e.cold, c)
		cold += time.Since(t0)
		b.StopTimer()
		e.cold.Remove(b.Context(), c)
		b.StartTimer()

		t0 = time.Now()
		c = e.create(b)
		firstExec(e.d, c)
		tmpl += time.Since(t0)
		b.StopTimer()
		e.d.Remove(b.Context(), c)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(ckpt), "checkpoint-ms")
	b.ReportMetric(float64(stateBytes)/n/(1<<20), "state-MiB")
	b.ReportMetric(float64(diskBytes)/n/(1<<20), "disk-MiB")
	b.ReportMetric(ms(restore), "restore-exec-ms")
	b.ReportMetric(ms(cold), "cold-create-exec-ms")
	b.ReportMetric(ms(tmpl), "template-create-exec-ms")
	b.ReportMetric(float64(restore)/float64(cold), "restore/cold")
}

// allocated returns the bytes of disk p takes (sparse files).
func allocated(b *testing.B, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}
