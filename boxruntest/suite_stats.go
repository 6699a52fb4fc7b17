package boxruntest

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// statsLimit bounds how long the Stats subtest waits for a burner or an
// allocation to show.
const statsLimit = 20 * time.Second

// testStats checks sandbox.Statser (skipped for drivers without it): a box
// burning CPU shows more than half a core, a box holding 64 MiB shows that
// much more memory, and a missing sandbox is ErrNotFound.
func (s *suite) testStats(t *testing.T) {
	st, ok := s.d.(sandbox.Statser)
	if !ok {
		t.Skipf("driver %s does not implement sandbox.Statser", s.d.Name())
	}
	ctx := t.Context()
	if _, err := st.Stats(ctx, "0123456789abcdef"); !errors.Is(err, boxrun.ErrNotFound) {
		t.Errorf("Stats of an unknown handle: err = %v, want ErrNotFound", err)
	}
	base, err := st.Stats(ctx, s.shared)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if base.MemoryBytes <= 0 || base.MemoryLimitBytes == 0 || base.MemoryLimitBytes < -1 {
		t.Errorf("idle box: memory %d, limit %d; want memory > 0 and a limit > 0 (or -1: unknown)", base.MemoryBytes, base.MemoryLimitBytes)
	}

	t.Run("CPU", func(t *testing.T) {
		p := s.background(t, "while :; do :; done")
		defer stopBackground(p)
		prevAt, prev := time.Now(), cpuTime(t, st, s.shared)
		want := burnerWant(t)
		deadline := time.Now().Add(statsLimit)
		var best float64
		for time.Now().Before(deadline) {
			time.Sleep(time.Second)
			now, cur := time.Now(), cpuTime(t, st, s.shared)
			best = max(best, float64(cur-prev)/float64(now.Sub(prevAt)))
			if best > want {
				return
			}
			prevAt, prev = now, cur
		}
		t.Errorf("a CPU burner shows at most %.2f cores, want > %.2f", best, want)
	})

	t.Run("Memory", func(t *testing.T) {
		before, err := st.Stats(ctx, s.shared)
		if err != nil {
			t.Fatal(err)
		}
		// dd holds a 64 MiB buffer, filled from /dev/zero over and over.
		// The box's other memory may shrink meanwhile (a VM guest
		// reclaims page cache under the new pressure: CI once saw
		// exactly 4 KiB short of +60 MiB), so +48 MiB is the bar.
		p := s.background(t, "dd if=/dev/zero of=/dev/null bs=64M count=1000000")
		defer stopBackground(p)
		deadline := time.Now().Add(statsLimit)
		var now sandbox.Stats
		for time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			if now, err = st.Stats(ctx, s.shared); err != nil {
				t.Fatal(err)
			}
			if now.MemoryBytes-before.MemoryBytes >= 48<<20 {
				if now.MemoryPeakBytes >= 0 && now.MemoryPeakBytes < now.MemoryBytes {
					t.Errorf("peak %d below current %d", now.MemoryPeakBytes, now.MemoryBytes)
				}
				if now.Processes >= 0 && now.Processes < 1 {
					t.Errorf("processes = %d with dd running", now.Processes)
				}
				return
			}
		}
		t.Errorf("holding 64 MiB: memory went from %d to %d bytes, want +48 MiB or more", before.MemoryBytes, now.MemoryBytes)
	})
}

// burnerWant is the CPU a burner must show: half a core, or, on a host
// whose run queue is longer than its CPU count (a shared CI machine), the
// burner's fair share of half a core (0.5 × CPUs / load).
func burnerWant(t *testing.T) float64 {
	want := 0.5
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return want
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return want
	}
	load, err := strconv.ParseFloat(f[0], 64)
	if n := float64(runtime.NumCPU()); err == nil && load > n {
		want = 0.5 * n / load
		t.Logf("host load %.1f on %d CPUs: a burner must show > %.2f cores", load, runtime.NumCPU(), want)
	}
	return want
}

// background starts sh -c script in the shared sandbox.
func (s *suite) background(t *testing.T, script string) sandbox.Process {
	t.Helper()
	p, err := s.d.Exec(t.Context(), s.shared, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", script}, Dir: "/"})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return p
}

func stopBackground(p sandbox.Process) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_ = p.Signal(ctx, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func cpuTime(t *testing.T, st sandbox.Statser, h string) time.Duration {
	t.Helper()
	s, err := st.Stats(t.Context(), h)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s.CPUTime
}
