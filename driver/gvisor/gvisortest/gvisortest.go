// Package gvisortest opens a Manager over the real gVisor driver for the
// tests of the packages served over it (the HTTP API, the MCP server),
// or skips where gVisor cannot run.
package gvisortest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// Manager opens a Manager in a temporary directory over the real gVisor
// driver, with limits of 64 execs and 64 KiB of output and then opts.
// runsc is $BOXRUN_RUNSC, else ../bin/runsc (from a package one level
// below the repository), else runsc on $PATH; the in-box init is built
// for the test. store nil resolves every image reference to boxruntest's
// busybox rootfs. Without root, runsc or gVisor support it skips (see
// internal/testenv). At the test's end every box is removed and the
// Manager closed.
func Manager(t *testing.T, store sandbox.ImageStore, opts ...boxrun.Option) *boxrun.Manager {
	t.Helper()
	runsc := os.Getenv(gvisor.RunscEnv)
	if runsc == "" {
		runsc, _ = filepath.Abs("../bin/runsc")
	}
	if _, err := os.Stat(runsc); err != nil {
		if runsc, err = exec.LookPath("runsc"); err != nil {
			testenv.Skip(t, "runsc not available (set "+gvisor.RunscEnv+" or build it: cd tools && CGO_ENABLED=0 go build -o ../bin/runsc gvisor.dev/gvisor/runsc)")
		}
	}
	testenv.NeedRoot(t)
	img := boxruntest.BusyboxImage(t)
	dir := t.TempDir()
	init := filepath.Join(dir, "bin", gvisor.InitName)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := gvisor.BuildInit(ctx, init); err != nil {
		t.Fatalf("build the in-box helper: %v", err)
	}
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor"), Runsc: runsc, InitPath: init})
	if errors.Is(err, gvisor.ErrUnsupported) {
		testenv.Skip(t, fmt.Sprintf("gVisor unsupported here: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store = BusyboxStore{Image: img}
	}
	m, err := boxrun.Open(dir, append([]boxrun.Option{boxrun.WithDriver(d), boxrun.WithImages(store), boxrun.WithLimits(64, 64<<10)}, opts...)...)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Remove every box so no sandbox outlives the test.
		boxes, _ := m.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			m.Remove(context.Background(), b.ID, true)
		}
		m.Close()
	})
	return m
}

// BusyboxStore is a sandbox.ImageStore that resolves every reference to
// Image (there is no registry in these tests; the image code has its
// own). It lists nothing and removes nothing.
type BusyboxStore struct{ Image *sandbox.Image }

// Pull returns a copy of the store's image under ref.
func (s BusyboxStore) Pull(_ context.Context, ref string, _ func(boxapi.PullProgress)) (*sandbox.Image, error) {
	img := *s.Image
	img.Ref = ref
	return &img, nil
}

// List returns no images.
func (s BusyboxStore) List(context.Context) ([]boxapi.ImageInfo, error) { return nil, nil }

// Remove does nothing.
func (s BusyboxStore) Remove(context.Context, string) error { return nil }

// Prune removes nothing.
func (s BusyboxStore) Prune(context.Context, []string) (int, error) { return 0, nil }

var _ sandbox.ImageStore = BusyboxStore{}
