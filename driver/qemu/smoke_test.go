package qemu_test

import (
	"context"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
)

var agent agentBuild

func TestSmoke(t *testing.T) {
	requireQEMU(t)
	d := newDriver(t, agent.get(t), t.TempDir())
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	h, err := d.Create(ctx, boxrun.SandboxSpec{BoxID: "smoke", Image: &boxrun.Image{Rootfs: busyboxRootfs(t)}, CPU: 1, MemoryMB: 256, DiskSizeGB: 1, Env: []string{"PATH=/bin", "FOO=bar"}, Workdir: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created %s in %v accel=%s", h, time.Since(start), d.Accel())
	out, errs, code := run(t, d, h, "", "sh", "-c", "echo hi $FOO; pwd; echo err >&2; exit 3")
	t.Logf("out=%q err=%q code=%d", out, errs, code)
	if err := d.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
}
