package gvisor_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/sandbox"
)

// TestConformance runs the Driver conformance suite against real runsc.
func TestConformance(t *testing.T) {
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New: func(t *testing.T) sandbox.Driver {
			d, _ := newDriver(t)
			return d
		},
		NewNetworked: func(t *testing.T, dns []string) sandbox.Driver {
			dir := filepath.Join(t.TempDir(), "gvisor")
			d, err := gvisor.New(gvisor.Config{Dir: dir, DNS: dns})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				d2, err := gvisor.New(gvisor.Config{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				if err := d2.Prune(context.Background(), nil); err != nil {
					t.Errorf("prune: %v", err)
				}
				d2.Close()
			})
			return d
		},
		Image:         boxruntest.BusyboxImage(t),
		UserImage:     boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
		NoCheckpoints: os.Geteuid() != 0, // checkpoints are root only
	})
}
