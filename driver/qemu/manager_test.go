package qemu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/sandbox"
)

// oneImage is an ImageStore that knows a single image.
type oneImage struct{ img *sandbox.Image }

func (s oneImage) Pull(ctx context.Context, ref string, _ func(boxapi.PullProgress)) (*sandbox.Image, error) {
	return s.img, nil
}
func (s oneImage) List(context.Context) ([]boxapi.ImageInfo, error) { return nil, nil }
func (s oneImage) Remove(context.Context, string) error             { return nil }
func (s oneImage) Prune(context.Context, []string) (int, error)     { return 0, nil }

// TestManager_Run runs a Manager over the qemu driver end to end: Run
// creates a VM, runs the command, collects its output and removes the VM;
// a box then survives Stop and Start with its files.
func TestManager_Run(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir + "/qemu", Agent: agent.get(t)})
	if err != nil {
		t.Fatal(err)
	}
	img := boxruntest.BusyboxImage(t)
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(oneImage{img}), boxrun.WithLimits(8, 8<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := m.Run(ctx, boxapi.RunRequest{Image: "busybox", Cmd: []string{"sh", "-c", "echo hello from $(uname -s) $FOO; pwd"},
		Env: map[string]string{"FOO": "bar"}, CPU: 1, MemoryMB: 256, DiskSizeGB: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == nil || *res.ExitCode != 0 || res.Stdout != "hello from Linux bar\n/root\n" {
		t.Errorf("Run: exit %v, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	boxes, err := m.List(ctx, boxapi.BoxFilter{})
	if err != nil || len(boxes) != 0 {
		t.Errorf("after Run: %d boxes, %v", len(boxes), err)
	}

	// The Manager's defaults: 2 vCPUs, 1 GiB, an 8 GiB disk.
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := m.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "echo kept > /root/f; nproc; df -k / | tail -1"}}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out.String()); len(f) < 3 || f[0] != "2" || len(f[2]) < 7 {
		t.Errorf("nproc and df: %q, want 2 CPUs and a disk of about 8 GiB", out.String())
	}
	if _, err := m.Stop(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	e, err := m.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"cat", "/root/f"}}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if e.ExitCode == nil || *e.ExitCode != 0 || out.String() != "kept\n" {
		t.Errorf("after stop and start: exit %v, output %q", e.ExitCode, out.String())
	}
	if err := m.Remove(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
}
