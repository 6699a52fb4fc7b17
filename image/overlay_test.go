package image_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestPull_OverlayLower uses a pulled rootfs the way drivers do: as the
// lower directory of an overlayfs mount that a box writes to. Writes go to
// the upper directory; the shared rootfs stays as it was. Needs root.
func TestPull_OverlayLower(t *testing.T) {
	testenv.NeedRoot(t)
	base := imagetest.BusyboxImage(t)
	layers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// Two layers over busybox: one deletes /etc/group, one replaces it.
	src := imagetest.Image(t, v1.Config{}, append(layers,
		imagetest.Layer(t, imagetest.Whiteout("etc/group"), imagetest.File("etc/motd", 0o644, "hi\n")))...)
	host := imagetest.Registry(t)
	img := MustPull(t, MustOpen(t), imagetest.Push(t, host, "ovl", src))

	work := t.TempDir()
	upper, wdir, merged := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, wdir, merged} {
		os.Mkdir(d, 0o755)
	}
	if err := unix.Mount("overlay", merged, "overlay", 0,
		"lowerdir="+img.Rootfs+",upperdir="+upper+",workdir="+wdir); err != nil {
		testenv.Skip(t, fmt.Sprintf("overlayfs: %v", err))
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)

	out, err := exec.Command("chroot", merged, "/bin/sh", "-c",
		"cat /etc/motd; test -e /etc/group || echo no-group; echo x > /bin/new; rm /etc/passwd; ls /bin/new").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, want := string(out), "hi\nno-group\n/bin/new\n"; got != want {
		t.Errorf("box said %q, want %q", got, want)
	}
	if exists(img.Rootfs, "bin/new") || !exists(img.Rootfs, "etc/passwd") {
		t.Errorf("the box's writes reached the shared rootfs")
	}
}
