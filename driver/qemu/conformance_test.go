package qemu_test

import (
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
		Image:     boxruntest.BusyboxImage(t),
		UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
	})
}
