package gvisor_test

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// poolStat reads one pool detail (ready, hits, misses) from DriverInfo.
func poolStat(m *boxrun.Manager, image, what string) int {
	n, _ := strconv.Atoi(m.DriverInfo().Details["pool."+image+"[1,256MB]."+what])
	return n
}

// waitPoolReady waits until the pool of image has n ready sandboxes.
func waitPoolReady(t testing.TB, m *boxrun.Manager, image string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for poolStat(m, image, "ready") < n {
		if time.Now().After(deadline) {
			t.Fatalf("pool not refilled to %d: %v", n, m.DriverInfo().Details)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestManager_Pool: a Create matching a pool takes a warm sandbox (a hit),
// with the box record and events of a normal create; the pool refills; a
// Create of another shape is not served from it; Close leaves no pooled
// sandbox behind (snapEnv's cleanup checks the host).
func TestManager_Pool(t *testing.T) {
	img := "dir:" + busyboxRootfs(t)
	m, _ := snapEnv(t, boxrun.WithPool(boxrun.PoolSpec{Image: img, CPU: 1, MemoryMB: 256, Size: 2}))
	ctx := context.Background()
	waitPoolReady(t, m, img, 2)
	sub, err := m.Subscribe(ctx, boxapi.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 256, Name: "pooled"})
	if err != nil {
		t.Fatal(err)
	}
	if hits := poolStat(m, img, "hits"); hits != 1 {
		t.Errorf("hits after a matching create: %d (%v)", hits, m.DriverInfo().Details)
	}
	if b.Status != boxapi.StatusRunning || b.Name != "pooled" || b.Workdir != "/root" || b.CPU != 1 || b.MemoryMB != 256 || b.Handle == "" {
		t.Errorf("pooled box: %+v", b)
	}
	var types []boxapi.EventType
	for len(types) < 2 {
		select {
		case ev := <-sub.C():
			if ev.BoxID == b.ID {
				types = append(types, ev.Type)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("events of the pooled create: %v", types)
		}
	}
	if types[0] != boxapi.EventBoxCreated || types[1] != boxapi.EventBoxStarted {
		t.Errorf("events of a pooled create: %v", types)
	}
	if out, code := mexec(t, m, b.ID, "sh", "-c", "echo hi > /f && cat /f && hostname"); code != 0 || out[:3] != "hi\n" {
		t.Errorf("exec in a pooled box: %q %d", out, code)
	}
	waitPoolReady(t, m, img, 2) // refilled
	// Another shape: a cold create, no hit.
	if _, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 300}); err != nil {
		t.Fatal(err)
	}
	// An env of its own: not poolable either.
	if _, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 256, Env: map[string]string{"A": "1"}}); err != nil {
		t.Fatal(err)
	}
	if hits := poolStat(m, img, "hits"); hits != 1 {
		t.Errorf("hits after non-matching creates: %d", hits)
	}
	// Two pooled boxes do not share files.
	b2, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := mexec(t, m, b2.ID, "test", "-e", "/f"); code == 0 {
		t.Error("a file of one pooled box is in another")
	}
}

// TestManager_PoolCrashLeftovers: a pool sandbox left by a crash is a
// sandbox no box row knows; the next Open prunes it.
func TestManager_PoolCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		testenv.Skip(t, err.Error())
	}
	h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "pool_crashed", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}, MemoryMB: 256, Workdir: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	m := openSnapManager(t, dir)
	defer m.Close()
	if ps := processesMentioning(t, h); len(ps) > 0 {
		t.Errorf("the crashed pool's sandbox survives Open: %v", ps)
	}
	assertNothingLeftOf(t, filepath.Join(dir, "gvisor"), h)
}

// BenchmarkPoolCreate: Create served by the warm pool → first exec output,
// vs a cold Create → first exec output, in the same run (p50 of each).
func BenchmarkPoolCreate(b *testing.B) {
	rootfs := busyboxRootfs(b)
	img := "dir:" + rootfs
	dir := b.TempDir()
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		testenv.Skip(b, err.Error())
	}
	m, err := openManager(dir, d, boxrun.WithPool(boxrun.PoolSpec{Image: img, CPU: 1, MemoryMB: 256, Size: 2}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	ctx := context.Background()
	var pooled, cold []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		waitPoolReady(b, m, img, 2)
		b.StartTimer()
		start := time.Now()
		box, err := m.Create(ctx, boxapi.BoxSpec{Image: img, CPU: 1, MemoryMB: 256})
		if err != nil {
			b.Fatal(err)
		}
		firstOutput(b, m, box.ID)
		pooled = append(pooled, time.Since(start))
		b.StopTimer()
		if err := m.Remove(ctx, box.ID, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cold = append(cold, coldCreateFirstOutput(b, m, rootfs))
	}
	b.ReportMetric(float64(p50(pooled).Microseconds())/1000, "pool-p50-ms")
	b.ReportMetric(float64(p50(cold).Microseconds())/1000, "cold-p50-ms")
	b.ReportMetric(float64(p50(pooled))/float64(p50(cold)), "ratio")
	b.ReportMetric(float64(poolStat(m, img, "hits")), "hits")
}

func p50(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
