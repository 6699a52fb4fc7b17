package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Disk tools: a box's writable layer lives on an ext4 file system in a
// sparse image file, mounted through a loop device.
const mkfsTool = "mkfs.ext4"

// DiskTools reports whether the host has what MakeDisk and MountDisk need
// (mkfs.ext4 from e2fsprogs, loop devices), and if not, what is missing.
func DiskTools() error {
	if _, err := exec.LookPath(mkfsTool); err != nil {
		return fmt.Errorf("%s not found (install e2fsprogs): %w", mkfsTool, err)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("no loop devices (/dev/loop-control): %w", err)
	}
	return nil
}

// MakeDisk creates img as a sparse file of sizeGB GiB holding an empty
// ext4 file system with no blocks reserved for root (the box is its only
// user). Only what the box writes takes space on the host. An existing img
// is an error.
func MakeDisk(ctx context.Context, img string, sizeGB int64) error {
	if sizeGB <= 0 {
		return fmt.Errorf("disk size %d GiB: must be positive", sizeGB)
	}
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(sizeGB << 30)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(img)
		return fmt.Errorf("size %s: %w", img, err)
	}
	// lazy_*_init: nothing is zeroed now (the kernel initializes inode
	// tables in the background), so this takes a few tens of ms.
	out, err := exec.CommandContext(ctx, mkfsTool, "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1", img).CombinedOutput()
	if err != nil {
		_ = os.Remove(img)
		return fmt.Errorf("%s %s: %w: %s", mkfsTool, img, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// MountDisk mounts the ext4 file system in img at target through a loop
// device that the kernel releases when the mount goes (autoclear), with
// nosuid and nodev: nothing a box puts on its disk is a setuid program or a
// device node for the host. (Loop set-up and mount are done here rather
// than by mount(8): a process start costs as much as the rest.)
//
// When a loop device already backs img (an earlier mount of it was only
// detached lazily because something still held it open), that device is
// mounted again instead: the kernel then hands out the file system it
// already has, so both mounts see the same data. A second loop device
// would give a second, independent ext4 instance over one file, each
// unaware of what the other has cached or written.
func MountDisk(img, target string) error {
	back, err := os.OpenFile(img, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer back.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(back.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", img, err)
	}
	if loop, dev := openLoopOf(st.Dev, st.Ino); loop != nil {
		// The open descriptor keeps the device bound to img (autoclear
		// waits for its last user) until the mount holds it.
		err := unix.Mount(dev, target, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "")
		loop.Close()
		if err != nil {
			return fmt.Errorf("mount %s (%s, already attached) on %s: %w", img, dev, target, err)
		}
		return nil
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer ctl.Close()
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return fmt.Errorf("get a free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		loop, err := os.OpenFile(dev, os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", dev, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], img)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) && attempt < 10 {
			loop.Close() // taken by someone else meanwhile
			continue
		}
		if err != nil {
			loop.Close()
			return fmt.Errorf("attach %s to %s: %w", img, dev, err)
		}
		err = unix.Mount(dev, target, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "")
		// Closing the last descriptor releases the device when it is not
		// mounted (autoclear), so a failed mount leaves nothing.
		loop.Close()
		if err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", img, dev, target, err)
		}
		return nil
	}
}

// openLoopOf returns an open loop device whose backing file is the file
// with device number dev and inode ino, and its path; nil when none is.
func openLoopOf(dev, ino uint64) (*os.File, string) {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, ""
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		// Only bound devices have a backing file.
		if _, err := os.Stat("/sys/block/" + e.Name() + "/loop/backing_file"); err != nil {
			continue
		}
		path := "/dev/" + e.Name()
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		if err == nil && info.Device == dev && info.Inode == ino && info.Offset == 0 && info.Sizelimit == 0 {
			return f, path
		}
		f.Close()
	}
	return nil, ""
}

// Mkdirs creates each directory (mode 0700) that does not exist yet.
func Mkdirs(paths ...string) error {
	for _, p := range paths {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// Chown gives path the host owner of box IDs uid and gid under s.
func (s IDShift) Chown(path string, uid, gid uint32) error {
	if uid >= s.Size || gid >= s.Size {
		return fmt.Errorf("chown %s: box ID %d:%d outside the box's range of %d", path, uid, gid, s.Size)
	}
	return os.Lchown(path, int(s.Base+uid), int(s.Base+gid))
}

// String is "Base:Size".
func (s IDShift) String() string {
	return strconv.FormatUint(uint64(s.Base), 10) + ":" + strconv.FormatUint(uint64(s.Size), 10)
}

// CopyDisk creates img as a copy of the disk image template (made by
// MakeDisk) that keeps its holes: only the few MiB that mkfs wrote are
// copied (copy_file_range, in the kernel), which is much cheaper than
// running mkfs again. An existing img is an error.
func CopyDisk(template, img string) (err error) {
	src, err := os.Open(template)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(img)
		}
	}()
	if err := dst.Truncate(st.Size()); err != nil {
		return err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for off := int64(0); off < st.Size(); {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("copy %s: seek data: %w", template, err)
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("copy %s: seek hole: %w", template, err)
		}
		for in, out := data, data; in < hole; {
			n, err := unix.CopyFileRange(sfd, &in, dfd, &out, int(hole-in), 0)
			if err != nil {
				return fmt.Errorf("copy %s: %w", template, err)
			}
			if n == 0 {
				return fmt.Errorf("copy %s: unexpected end of file", template)
			}
		}
		off = hole
	}
	return nil
}
