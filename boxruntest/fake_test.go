package boxruntest_test

import (
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

func TestFakeDriver(t *testing.T) {
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New:           func(t *testing.T) boxrun.Driver { return boxruntest.NewFakeDriver(t.TempDir()) },
		HostProcesses: true,
	})
}
