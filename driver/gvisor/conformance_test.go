package gvisor_test

import (
	"testing"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

// TestConformance runs the Driver conformance suite against real runsc.
func TestConformance(t *testing.T) {
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New: func(t *testing.T) sandbox.Driver {
			d, _ := newDriver(t)
			return d
		},
		Image:     boxruntest.BusyboxImage(t),
		UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
	})
}
