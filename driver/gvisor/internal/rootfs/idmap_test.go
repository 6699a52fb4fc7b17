package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/boxrun/boxrun/internal/mountutil"
	"github.com/boxrun/boxrun/internal/testenv"
)

// TestOwnerExtents: box root is a volume's owner only when that owner is
// an ordinary host ID; host root is never mapped.
func TestOwnerExtents(t *testing.T) {
	s := IDShift{Base: 1_000_000_000, Size: 65536}
	plain := []idExtent{{Box: 0, Host: s.Base, Size: s.Size}}
	for _, c := range []struct {
		owner uint32
		want  []idExtent
	}{
		{0, plain},
		{s.Base, plain},
		{s.Base + 7, plain},
		{s.Base + s.Size - 1, plain},
		{1000, []idExtent{{Box: 0, Host: 1000, Size: 1}, {Box: 1, Host: s.Base + 1, Size: s.Size - 1}}},
		{s.Base + s.Size, []idExtent{{Box: 0, Host: s.Base + s.Size, Size: 1}, {Box: 1, Host: s.Base + 1, Size: s.Size - 1}}},
	} {
		got := s.ownerExtents(c.owner)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("owner %d: %+v, want %+v", c.owner, got, c.want)
		}
		for _, e := range got {
			if e.Host == 0 {
				t.Errorf("owner %d: host root mapped: %+v", c.owner, got)
			}
		}
	}
}

// TestBindVolume: through the mount of a user's directory, what host root
// (box root, as the sandbox does its file work) creates belongs to the
// user; a host-root file in it cannot be written even if world-writable;
// a read-only volume cannot be written on the host side either.
func TestBindVolume(t *testing.T) {
	testenv.NeedRoot(t)
	s := IDShift{Base: 1_000_000_000, Size: 65536}
	src, tgt := t.TempDir(), t.TempDir()
	rootFile := filepath.Join(src, "root-file")
	if err := os.WriteFile(rootFile, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rootFile, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(src, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	if err := BindVolume(src, tgt, s, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mountutil.Unmount(tgt) })
	if err := os.WriteFile(filepath.Join(tgt, "new"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(src, "new"), &st); err != nil || st.Uid != 4321 || st.Gid != 4322 {
		t.Errorf("file created through the mount: %d:%d (%v), want the volume owner 4321:4322", st.Uid, st.Gid, err)
	}
	if err := os.Chown(filepath.Join(tgt, "new"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(src, "new"), &st); err != nil || st.Uid != s.Base+1000 {
		t.Errorf("chown to 1000 through the mount: stored as %d (%v), want %d", st.Uid, err, s.Base+1000)
	}
	if err := os.WriteFile(filepath.Join(tgt, "root-file"), []byte("evil"), 0o666); !errors.Is(err, os.ErrPermission) {
		t.Errorf("writing a host-root file through the mount: %v, want EACCES", err)
	}

	ro := t.TempDir()
	if err := BindVolume(src, ro, s, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mountutil.Unmount(ro) })
	if err := os.WriteFile(filepath.Join(ro, "new2"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create in a read-only volume mount: %v, want EROFS", err)
	}
}
