package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
)

func TestReconnect(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	d := newDriver(t, agent.get(t), dir)
	ctx := context.Background()
	h, err := d.Create(ctx, boxrun.SandboxSpec{BoxID: "rc", Image: &boxrun.Image{Rootfs: busyboxRootfs(t)}, CPU: 1, MemoryMB: 256, DiskSizeGB: 1, Env: []string{"PATH=/bin"}, Workdir: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c, _ := os.ReadFile(filepath.Join(dir, "boxes", h, "console.log"))
		t.Logf("console:\n%s", c)
		d.Remove(ctx, h)
	}()
	run(t, d, h, "", "true")
	d.Close()
	time.Sleep(time.Second)
	d = newDriver(t, agent.get(t), dir)
	o, _, _ := run(t, d, h, "", "echo", "again")
	t.Log(o)
}
