package boxruntest

import (
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun"
)

// NewManager opens a Manager in a fresh t.TempDir over a FakeDriver (host
// processes, no isolation: tests only), with limits of 64 CPUs and 64 GiB so
// tests are independent of the host. Extra options are applied after those
// defaults. The Manager is closed when the test ends.
func NewManager(t testing.TB, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	m := OpenManager(t, t.TempDir(), append([]boxrun.Option{boxrun.WithLimits(64, 64<<10)}, opts...)...)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("boxruntest: close manager: %v", err)
		}
	})
	return m
}

// OpenManager opens a Manager on dir over a FakeDriver in dir/fake, failing
// the test on error. The caller closes it; opening the same dir again (after
// Close, or after a crash) is how tests check what a restart sees.
func OpenManager(t testing.TB, dir string, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	m, err := boxrun.Open(dir, append([]boxrun.Option{boxrun.WithDriver(NewFakeDriver(filepath.Join(dir, "fake"))), boxrun.WithImages(nil)}, opts...)...)
	if err != nil {
		t.Fatalf("boxruntest: open manager: %v", err)
	}
	return m
}
