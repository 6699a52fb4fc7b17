package gvisor_test

import (
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/image"
)

// openManager opens a Manager over d on dir, with an image store in
// dir/images and the tests' limits (64 boxes, 64 GiB), opts added. The
// caller closes it.
func openManager(dir string, d *gvisor.Driver, opts ...boxrun.Option) (*boxrun.Manager, error) {
	images, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}
	return boxrun.Open(dir, append([]boxrun.Option{boxrun.WithDriver(d), boxrun.WithImages(images), boxrun.WithLimits(64, 64<<10)}, opts...)...)
}

// newManager opens a Manager over d (see openManager) in a fresh
// directory; it is closed when t ends.
func newManager(t testing.TB, d *gvisor.Driver, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	m, err := openManager(t.TempDir(), d, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
