package gvisor_test

import (
	"context"
	"testing"

	"github.com/boxrun/boxrun"
)

func TestSmoke(t *testing.T) {
	d, _ := newDriver(t)
	img := &boxrun.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, boxrun.SandboxSpec{BoxID: "b1", Image: img, CPU: 1, MemoryMB: 256, Workdir: "/root", Env: []string{"FOO=bar"}})
	st, err := d.State(context.Background(), h)
	t.Logf("state %v %v", st, err)
	out, errOut, code := run(t, d, h, nil, "sh", "-c", "echo hi $FOO; pwd; echo err >&2; exit 3")
	t.Logf("out=%q err=%q code=%d", out, errOut, code)
}
