package gvisor_test

import (
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// TestConformance runs the Driver conformance suite against real runsc.
func TestConformance(t *testing.T) {
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New: func(t *testing.T) boxrun.Driver {
			d, _ := newDriver(t)
			return d
		},
		Image:     boxruntest.BusyboxImage(t),
		UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
	})
}
