package boxrun_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// The output benchmarks isolate the Manager's own cost per byte of
// output: the fake driver runs `dd` as a host process, so the box side
// is a plain pipe and what differs from the bare baseline (the same `dd`
// into a pipe read by this process and discarded) is the Manager's path:
// the copy into pending output, the log record, the write, the publish,
// the final sync and the exit commit.

// benchMiB is the output size of the throughput benchmarks
// (BOXRUN_BENCH_MIB, default 256).
func benchMiB(b *testing.B, def int64) int64 {
	if s := os.Getenv("BOXRUN_BENCH_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("BOXRUN_BENCH_MIB=%q", s)
		}
		return n
	}
	return def
}

type countW atomic.Int64

func (c *countW) Write(p []byte) (int, error) {
	(*atomic.Int64)(c).Add(int64(len(p)))
	return len(p), nil
}

// bareDD runs cmd on the host into a pipe read with a 256 KiB buffer
// and discarded, and returns how long it took.
func bareDD(b *testing.B, cmdline []string, want int64) time.Duration {
	start := time.Now()
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, out, make([]byte, 256<<10))
	if err != nil || n != want {
		b.Fatal(n, err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkManagerOutput: N MiB of stdout (dd, 64 KiB writes) through
// Manager.Exec, persisted, vs the same dd into a bare pipe, same run.
func BenchmarkManagerOutput(b *testing.B) {
	size := benchMiB(b, 256) << 20
	m := boxruntest.NewManager(b)
	ctx := context.Background()
	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		b.Fatal(err)
	}
	cmdline := []string{"dd", "if=/dev/zero", "bs=65536", fmt.Sprint("count=", size/65536), "status=none"}
	var lib, bare time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		var n countW
		start := time.Now()
		e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: cmdline}, &n, nil)
		if err != nil || e.Status != boxrun.ExecSucceeded || (*atomic.Int64)(&n).Load() != size {
			b.Fatal(e, err, (*atomic.Int64)(&n).Load())
		}
		lib += time.Since(start)
		bare += bareDD(b, cmdline, size)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(lib), "box-MB/s")
	b.ReportMetric(mbps(bare), "bare-MB/s")
	b.ReportMetric(mbps(lib)/mbps(bare), "ratio")
}

// BenchmarkReplay: replay (Manager.ExecEvents from seq -1) of one exec's
// stored output (BOXRUN_BENCH_MIB, default 1024 MiB) vs reading its log
// file straight to io.Discard, same run; reports the process's peak RSS
// growth while replaying (the store streams, so it stays bounded).
func BenchmarkReplay(b *testing.B) {
	size := benchMiB(b, 1024) << 20
	dir := b.TempDir()
	m := boxruntest.OpenManager(b, dir)
	defer m.Close()
	ctx := context.Background()
	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		b.Fatal(err)
	}
	cmdline := []string{"dd", "if=/dev/zero", "bs=65536", fmt.Sprint("count=", size/65536), "status=none"}
	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: cmdline}, nil, nil)
	if err != nil || e.Status != boxrun.ExecSucceeded {
		b.Fatal(e, err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "output", e.ID+".log"))
	if len(logs) != 1 {
		b.Fatalf("no output log of %s", e.ID)
	}
	var lib, bare time.Duration
	var peak int64
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		base := rssKiB(b)
		stop := make(chan struct{})
		sampled := make(chan int64)
		go func() {
			var max int64
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				if r := rssKiB(b); r > max {
					max = r
				}
				select {
				case <-stop:
					sampled <- max
					return
				case <-t.C:
				}
			}
		}()
		var n int64
		start := time.Now()
		err := m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
			if ev.Kind == boxrun.KindLog {
				n += int64(len(ev.Data))
			}
			return nil
		})
		lib += time.Since(start)
		close(stop)
		if grow := <-sampled - base; grow > peak {
			peak = grow
		}
		if err != nil || n != size {
			b.Fatal(n, err)
		}

		start = time.Now()
		f, err := os.Open(logs[0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, f, make([]byte, 256<<10)); err != nil {
			b.Fatal(err)
		}
		f.Close()
		bare += time.Since(start)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(lib), "replay-MB/s")
	b.ReportMetric(mbps(bare), "file-MB/s")
	b.ReportMetric(mbps(lib)/mbps(bare), "ratio")
	b.ReportMetric(float64(peak)/1024, "rss-growth-MiB")
}

// rssKiB is this process's resident set size in KiB.
func rssKiB(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
