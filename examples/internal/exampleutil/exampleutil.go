// Package exampleutil is the shared main() of the examples: it opens a real
// Manager (gVisor driver, OCI image store) and runs a recipe against it.
package exampleutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/image"
)

// DefaultImage is the image the examples use when $BOXRUN_IMAGE is unset.
// On a machine without registry access, build a local one with
// `boxrun images build-busybox /tmp/bb` and set BOXRUN_IMAGE=oci:/tmp/bb.
const DefaultImage = "alpine:3.20"

// Image returns $BOXRUN_IMAGE, or DefaultImage.
func Image() string {
	if img := os.Getenv("BOXRUN_IMAGE"); img != "" {
		return img
	}
	return DefaultImage
}

// SmallBox is the spec of the examples' boxes: Image(), 1 vCPU, 256 MiB,
// everything else at its default. Set more fields on the returned value.
func SmallBox() boxrun.BoxSpec {
	return boxrun.BoxSpec{Image: Image(), CPU: 1, MemoryMB: 256}
}

// OpenManager opens a Manager in dir with the gVisor driver (runsc and the
// in-box helper found as gvisor.Config documents) and an image store in
// dir/images. The caller must Close it.
func OpenManager(dir string) (*boxrun.Manager, error) {
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		return nil, err
	}
	imgs, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		d.Close()
		return nil, err
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(imgs))
	if err != nil {
		imgs.Close()
		d.Close()
		return nil, err
	}
	return m, nil
}

// Main runs recipe against a fresh Manager in $BOXRUN_EXAMPLE_DIR (or a
// temporary directory, removed afterwards) until it returns or Ctrl-C, and
// exits 1 on error.
func Main(recipe func(ctx context.Context, svc boxrun.Service, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, recipe)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, recipe func(context.Context, boxrun.Service, io.Writer) error) error {
	dir := os.Getenv("BOXRUN_EXAMPLE_DIR")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "boxrun-example-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	m, err := OpenManager(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	return recipe(ctx, m, os.Stdout)
}
