package qemu_test

import (
	"context"
	"testing"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/sandbox"
)

func TestDriver(t *testing.T) {
	requireQEMU(t)
	path := agent.get(t)
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New: func(t *testing.T) sandbox.Driver {
			d, err := qemu.New(qemu.Config{Dir: t.TempDir(), Agent: path, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("qemu.New: %v", err)
			}
			return d
		},
		NewNetworked: func(t *testing.T, dns []string) sandbox.Driver {
			dir := t.TempDir()
			d, err := qemu.New(qemu.Config{Dir: dir, Agent: path, Logger: testLogger(t), DNS: dns})
			if err != nil {
				t.Fatalf("qemu.New: %v", err)
			}
			t.Cleanup(func() { pruneAll(t, dir, path) })
			return d
		},
		Image:     boxruntest.BusyboxImage(t),
		UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
	})
}

// pruneAll prunes everything a driver on dir left (a new driver, as after
// a crash) and fails t if Prune fails.
func pruneAll(t *testing.T, dir, agentPath string) {
	d, err := qemu.New(qemu.Config{Dir: dir, Agent: agentPath})
	if err != nil {
		t.Errorf("qemu.New for prune: %v", err)
		return
	}
	defer d.Close()
	if err := d.Prune(context.Background(), nil); err != nil {
		t.Errorf("prune: %v", err)
	}
}
