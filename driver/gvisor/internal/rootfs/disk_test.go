package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/internal/mountutil"
	"github.com/boxrun/boxrun/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestMountDisk_BusyDiskMountedAgain: a disk whose mount was only detached
// lazily (a process still had a directory of it open) and is then mounted
// again is the same file system: what is written through the old,
// detached mount is seen through the new one and the other way round, and
// one loop device backs the image. (A second loop device would be a second
// ext4 over one file: the new mount would miss what the old one has not
// written back, as a box's freshly made upper dir, and both would corrupt
// the image.)
func TestMountDisk_BusyDiskMountedAgain(t *testing.T) {
	testenv.NeedRoot(t)
	if err := DiskTools(); err != nil {
		testenv.Skip(t, err.Error())
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "disk")
	if err := Mkdirs(mnt); err != nil {
		t.Fatal(err)
	}
	if err := MakeDisk(context.Background(), img, 1); err != nil {
		t.Fatal(err)
	}
	if err := MountDisk(img, mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mountutil.UnmountUnder(dir) })
	if err := os.Mkdir(filepath.Join(mnt, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(filepath.Join(mnt, "upper"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if err := mountutil.Unmount(mnt); err != nil { // busy: detached lazily
		t.Fatal(err)
	}
	if mountutil.IsMounted(mnt) {
		t.Fatal("still mounted after Unmount")
	}
	if err := MountDisk(img, mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "upper")); err != nil {
		t.Fatalf("the directory made before the lazy detach: %v", err)
	}
	// Old mount → new mount.
	fd, err := unix.Openat(int(held.Fd()), "old", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte("from the detached mount")); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if b, err := os.ReadFile(filepath.Join(mnt, "upper", "old")); err != nil || string(b) != "from the detached mount" {
		t.Fatalf("new mount reads %q, %v", b, err)
	}
	// New mount → old mount.
	if err := os.WriteFile(filepath.Join(mnt, "upper", "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Faccessat(int(held.Fd()), "new", unix.F_OK, 0); err != nil {
		t.Fatalf("the detached mount does not see the new mount's file: %v", err)
	}
	if n := loopsBacking(t, img); n != 1 {
		t.Fatalf("%d loop devices back the image, want 1", n)
	}
}

// loopsBacking counts the loop devices whose backing file is img.
func loopsBacking(t *testing.T, img string) int {
	t.Helper()
	ms, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	n := 0
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err == nil && strings.TrimSpace(string(b)) == img {
			n++
		}
	}
	return n
}

// TestCopyDisk: a copy of an empty disk image is as large, as sparse, and
// a working file system independent of the template and of other copies.
func TestCopyDisk(t *testing.T) {
	testenv.NeedRoot(t)
	if err := DiskTools(); err != nil {
		testenv.Skip(t, err.Error())
	}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl.img")
	if err := MakeDisk(context.Background(), tmpl, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		img, mnt := filepath.Join(dir, name+".img"), filepath.Join(dir, name)
		if err := CopyDisk(tmpl, img); err != nil {
			t.Fatal(err)
		}
		if err := CopyDisk(tmpl, img); err == nil {
			t.Fatal("CopyDisk over an existing image succeeded")
		}
		var st, ts unix.Stat_t
		if err := unix.Stat(img, &st); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(tmpl, &ts); err != nil {
			t.Fatal(err)
		}
		if st.Size != 1<<30 || st.Blocks > ts.Blocks+8 {
			t.Fatalf("copy: %d bytes, %d blocks (template %d blocks)", st.Size, st.Blocks, ts.Blocks)
		}
		if err := Mkdirs(mnt); err != nil {
			t.Fatal(err)
		}
		if err := MountDisk(img, mnt); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(mnt)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Fatal(err)
		}
		sort.Strings(names)
		if got := strings.Join(names, " "); got != name+" lost+found" {
			t.Fatalf("files on copy %s: %s", name, got)
		}
	}
}
