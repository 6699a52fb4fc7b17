package qemu_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/sandbox"
)

// TestDriver_Snapshot: boxes of one shape start from one template
// snapshot, yet each has its own disk, the host's time and its own
// random numbers; Start of a stopped box restores too.
func TestDriver_Snapshot(t *testing.T) {
	requireQEMU(t)
	var logs boxruntest.SyncBuffer
	d, err := qemu.New(qemu.Config{Dir: t.TempDir(), Agent: agent.get(t),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	img := boxruntest.BusyboxImage(t)
	var hs []string
	for i := range 2 {
		h, err := d.Create(ctx, sandbox.Spec{BoxID: "snap" + strconv.Itoa(i), Image: img, CPU: 1, MemoryMB: 256,
			DiskSizeGB: 1, Workdir: "/root", Env: img.Config.Env})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Remove(context.Background(), h)
		hs = append(hs, h)
	}
	if n := strings.Count(logs.String(), "boot=snapshot"); n != 2 {
		t.Fatalf("%d snapshot boots, want 2; log:\n%s", n, logs.String())
	}
	var rnd []string
	for i, h := range hs {
		if _, _, code := run(t, d, h, "", "sh", "-c", "echo "+strconv.Itoa(i)+" > /root/mine"); code != 0 {
			t.Fatal("write failed")
		}
		out, _, _ := run(t, d, h, "", "sh", "-c", "head -c 16 /dev/urandom | od -An -tx1; date +%s")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		rnd = append(rnd, lines[0])
		guest, _ := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
		if skew := time.Now().Unix() - guest; skew > 30 || skew < -30 {
			t.Errorf("box %d: guest clock off by %ds", i, skew)
		}
	}
	// Loopback works (the only network a box has).
	if out, _, _ := run(t, d, hs[0], "", "sh", "-c", "ip -o addr show lo"); !strings.Contains(out, "127.0.0.1") {
		t.Errorf("lo: %q, want 127.0.0.1", out)
	}
	if rnd[0] == rnd[1] {
		t.Errorf("two clones read the same random bytes %s", rnd[0])
	}
	if err := d.Stop(ctx, hs[1]); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, hs[1]); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "boot=snapshot"); n != 3 {
		t.Errorf("Start: %d snapshot boots in all, want 3", n)
	}
	for i, h := range hs {
		if out, _, _ := run(t, d, h, "", "cat", "/root/mine"); out != strconv.Itoa(i)+"\n" {
			t.Errorf("box %d reads its file as %q", i, out)
		}
	}
}
