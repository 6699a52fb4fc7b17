package boxruntest

import (
	"testing"

	"github.com/boxrun/boxrun"
)

// NewManager opens a Manager in a fresh t.TempDir over a FakeDriver (host
// processes, no isolation: tests only), with limits of 64 CPUs and 64 GiB so
// tests are independent of the host. Extra options are applied after those
// defaults. The Manager is closed when the test ends.
func NewManager(t testing.TB, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	dir := t.TempDir()
	m, err := boxrun.Open(dir, append([]boxrun.Option{
		boxrun.WithDriver(NewFakeDriver(dir + "/fake")),
		boxrun.WithLimits(64, 64<<10),
	}, opts...)...)
	if err != nil {
		t.Fatalf("boxruntest: open manager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("boxruntest: close manager: %v", err)
		}
	})
	return m
}
