package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/boxrun/boxrun/internal/testenv"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func xattr(t *testing.T, path, key string) (string, bool) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, key, buf)
	if errors.Is(err, unix.ENODATA) {
		return "", false
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", path, key, err)
	}
	return string(buf[:n]), true
}

// A layer's extended attributes pass an allow-list (user.*, and
// security.capability on regular files); trusted.overlay.* and other
// namespaces are dropped. Character and block devices are never created on
// the host; FIFOs are.
func TestPull_XattrsAndDevices(t *testing.T) {
	testenv.NeedRoot(t)                                                                  // trusted.* and security.* need root to be set at all
	cap := string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // v2, cap_net_raw
	layer := imagetest.Layer(t,
		imagetest.Entry{Name: "bin/ping", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n", Xattrs: map[string]string{
			"security.capability": cap, "user.note": "kept", "trusted.evil": "x", "security.selinux": "system_u:object_r:shadow_t:s0",
		}},
		imagetest.Entry{Name: "lower/", Type: tar.TypeDir, Mode: 0o755, Xattrs: map[string]string{
			"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "user.dir": "ok", "security.capability": cap,
		}},
		imagetest.Entry{Name: "dev/sda", Type: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0},
		imagetest.Entry{Name: "tmp/mem", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		imagetest.Entry{Name: "tmp/kmsg", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 11},
		imagetest.Entry{Name: "tmp/fifo", Type: tar.TypeFifo, Mode: 0o644},
	)
	host := imagetest.Registry(t)
	s := MustOpen(t)
	ref := imagetest.Push(t, host, "evil/attrs", imagetest.Image(t, v1.Config{}, layer))
	img := MustPull(t, s, ref)
	root := img.Rootfs
	ping := filepath.Join(root, "bin/ping")
	if v, ok := xattr(t, ping, "security.capability"); !ok || v != cap {
		t.Errorf("security.capability on a file = %q, %v; want it kept", v, ok)
	}
	if v, ok := xattr(t, ping, "user.note"); !ok || v != "kept" {
		t.Errorf("user.note = %q, %v; want kept", v, ok)
	}
	for _, k := range []string{"trusted.evil", "security.selinux"} {
		if v, ok := xattr(t, ping, k); ok {
			t.Errorf("%s applied to a file: %q", k, v)
		}
	}
	lower := filepath.Join(root, "lower")
	for _, k := range []string{"trusted.overlay.opaque", "trusted.overlay.redirect", "security.capability"} {
		if v, ok := xattr(t, lower, k); ok {
			t.Errorf("%s applied to a directory: %q", k, v)
		}
	}
	if v, ok := xattr(t, lower, "user.dir"); !ok || v != "ok" {
		t.Errorf("user.dir = %q, %v", v, ok)
	}
	// The layer directories (what the overlay mounts stack) hold no
	// disallowed attribute or device node either.
	filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
			t.Errorf("device node in the image store: %s", p)
		}
		if d.Type()&fs.ModeSymlink == 0 {
			for _, k := range []string{"trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.evil", "security.selinux"} {
				if _, ok := xattr(t, p, k); ok {
					t.Errorf("%s on %s", k, p)
				}
			}
		}
		return nil
	})
	for _, n := range []string{"dev/sda", "tmp/mem", "tmp/kmsg"} {
		if _, err := os.Lstat(filepath.Join(root, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("device %s was created: %v", n, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(root, "tmp/fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
}

// Headers the unpacker cannot apply safely reject the layer before the
// entry is created, and the refused pull leaves nothing in the store.
func TestPull_InvalidHeaders(t *testing.T) {
	host := imagetest.Registry(t)
	s := MustOpen(t)
	big := strings.Repeat("v", 64<<10+1)
	for name, e := range map[string]imagetest.Entry{
		"HugeUID":      {Name: "f", Type: tar.TypeReg, Mode: 0o644, UID: 1 << 40},
		"HugeGID":      {Name: "f", Type: tar.TypeReg, Mode: 0o644, GID: 1 << 33},
		"UnknownType":  {Name: "f", Type: 'V', Mode: 0o644},
		"HugeXattr":    {Name: "f", Type: tar.TypeReg, Mode: 0o644, Xattrs: map[string]string{"user.big": big}},
		"EmptySymlink": {Name: "f", Type: tar.TypeSymlink, Mode: 0o777},
	} {
		t.Run(name, func(t *testing.T) {
			l := imagetest.LayerFromTar(t, imagetest.Tar(t, imagetest.File("before", 0o644, "x"), e, imagetest.File("after", 0o644, "y")))
			ref := imagetest.Push(t, host, "evil/"+strings.ToLower(name), imagetest.Image(t, v1.Config{}, l))
			img, err := s.Pull(context.Background(), ref, nil)
			if err == nil {
				t.Fatalf("pull succeeded: %v", img.Rootfs)
			}
			wantPullFailed(t, err, ref, "")
		})
	}
	for _, d := range []string{"tmp", "layers/sha256", "rootfs/sha256"} {
		for _, n := range entries(t, filepath.Join(s.Dir(), d)) {
			if strings.HasSuffix(n, ".lock") {
				continue
			}
			if got := entries(t, filepath.Join(s.Dir(), d, n)); d == "tmp" && len(got) != 0 {
				t.Errorf("work dir %s holds %q", n, got)
			} else if d != "tmp" {
				t.Errorf("%s holds %s after refused pulls", d, n)
			}
		}
	}
}
