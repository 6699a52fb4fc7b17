package gvisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/boxrun/boxrun/driver/gvisor/internal/rootfs"
	"github.com/boxrun/boxrun/internal/mountutil"
)

// The writable layer of a box made as root with shifted IDs (boxMeta.Shift
// set; see "Host files" in the package doc):
//
//	<box>/disk.img   the box's disk: a sparse ext4 image of DiskGB GiB
//	                 (absent when DiskGB is 0)
//	<box>/disk/      its loop mount (nosuid, nodev), or a plain directory;
//	                 holds upper/ and work/, stored with host IDs Base+n
//	<box>/layer/     an ID-mapped bind mount of disk/ (host Base+n seen as n)
//	<box>/rootfs/    the overlay: the image below, layer/upper above
//	<box>/vols/N     an ID-mapped bind mount of read-write volume N
//
// Boxes made before (no Shift) keep <box>/upper and <box>/work, unshifted.
const (
	diskImgName = "disk.img"
	diskDirName = "disk"
	layerName   = "layer"
	volsName    = "vols"
)

// DefaultIDBase is the first host ID of the range boxes' IDs are shifted
// to when Config.IDBase is 0: box ID n is host ID DefaultIDBase+n.
const DefaultIDBase = 1_000_000_000

// shiftVolumes turns on ID-mapped mounts for read-write volumes. Off: with
// them, box root could not create files even in a world-writable host
// directory of another owner (Permission denied, not yet understood), which
// breaks the driver conformance suite; volumes stay plain bind mounts
// (nosuid, nodev in the box) until that is fixed.
const shiftVolumes = false

// idRangeSize is the number of IDs a box has (0..65535).
const idRangeSize = 65536

// rawUpper is the host directory holding the box's upper layer as stored
// (host IDs shifted when m.Shift is set).
func (d *Driver) rawUpper(h string, m *boxMeta) string {
	if m != nil && m.Shift != nil {
		return filepath.Join(d.boxDir(h), diskDirName, "upper")
	}
	return filepath.Join(d.boxDir(h), "upper")
}

// overlayDirs returns the upper and work directories the overlay of h is
// mounted with.
func (d *Driver) overlayDirs(h string, m *boxMeta) (upper, work string) {
	dir := d.boxDir(h)
	if m.Shift != nil {
		dir = filepath.Join(dir, layerName)
	}
	return filepath.Join(dir, "upper"), filepath.Join(dir, "work")
}

// newLayer makes the directories of a new box's writable layer (its disk
// image too, when m.DiskGB > 0) under the already created box dir; the
// upper dir gets the owner and mode of the image's root. It leaves the disk
// mounted (mountRoot then mounts the rest).
func (d *Driver) newLayer(ctx context.Context, h string, m *boxMeta) error {
	bd := d.boxDir(h)
	if m.Shift == nil {
		if err := rootfs.Mkdirs(filepath.Join(bd, "upper"), filepath.Join(bd, "work")); err != nil {
			return err
		}
		// The overlay's root takes the upper dir's owner and mode: give
		// it the image root's, or non-root users cannot even enter /.
		return copyOwnerMode(m.Lower, filepath.Join(bd, "upper"), d.userns != nil)
	}
	if err := rootfs.Mkdirs(filepath.Join(bd, diskDirName), filepath.Join(bd, layerName)); err != nil {
		return err
	}
	if m.DiskGB > 0 {
		if err := rootfs.MakeDisk(ctx, filepath.Join(bd, diskImgName), m.DiskGB); err != nil {
			return err
		}
	}
	if err := d.mountDisk(ctx, h, m); err != nil {
		return err
	}
	upper, work := d.rawUpper(h, m), filepath.Join(bd, diskDirName, "work")
	if err := rootfs.Mkdirs(upper, work); err != nil {
		return err
	}
	// The disk's root and work belong to box root on the host (Base):
	// through the ID-mapped mount, anything else is nobody's, and the
	// overlay (mounted by host root, which is box root there) could not use
	// them.
	if err := m.Shift.Chown(filepath.Join(bd, diskDirName), 0, 0); err != nil {
		return err
	}
	st, err := os.Stat(m.Lower)
	if err != nil {
		return err
	}
	uid, gid := uint32(0), uint32(0)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid < idRangeSize && sys.Gid < idRangeSize {
		uid, gid = sys.Uid, sys.Gid
	}
	if err := m.Shift.Chown(upper, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(upper, st.Mode()&(fs.ModePerm|fs.ModeSticky)); err != nil {
		return err
	}
	return m.Shift.Chown(work, 0, 0)
}

// mountDisk mounts the box's disk image at <box>/disk unless it is
// mounted or the box has none.
func (d *Driver) mountDisk(ctx context.Context, h string, m *boxMeta) error {
	if m.Shift == nil || m.DiskGB <= 0 {
		return nil
	}
	target := filepath.Join(d.boxDir(h), diskDirName)
	if mountutil.IsMounted(target) {
		return nil
	}
	return rootfs.MountDisk(filepath.Join(d.boxDir(h), diskImgName), target)
}

// mountRoot mounts what the box's sandbox needs on the host, as root: its
// disk, the ID-mapped layer and volumes, and the overlay at rootfs.
// Mounts already there are kept. On error, teardown unmounts them.
func (d *Driver) mountRoot(ctx context.Context, h string, m *boxMeta) error {
	root := d.rootfs(h)
	if m.Shift != nil {
		if err := d.mountDisk(ctx, h, m); err != nil {
			return err
		}
		layer := filepath.Join(d.boxDir(h), layerName)
		if !mountutil.IsMounted(layer) {
			if err := rootfs.BindShifted(filepath.Join(d.boxDir(h), diskDirName), layer, *m.Shift); err != nil {
				return err
			}
		}
		for i, v := range m.Volumes {
			if v.Readonly || !shiftVolumes {
				continue
			}
			if err := d.mountVolume(h, m, i); err != nil {
				return err
			}
		}
	}
	if !mountutil.IsMounted(root) {
		upper, work := d.overlayDirs(h, m)
		if err := rootfs.MountOverlay(m.Lower, upper, work, root); err != nil {
			return err
		}
	}
	return nil
}

// volumeSource is the host path the sandbox mounts volume i from: the
// volume itself, or for a read-write volume of a shifted box its ID-mapped
// mount, so that what box root writes there is stored as host ID Base.
func (d *Driver) volumeSource(h string, m *boxMeta, i int) string {
	if m.Shift == nil || m.Volumes[i].Readonly || !shiftVolumes {
		return m.Volumes[i].HostPath
	}
	return filepath.Join(d.boxDir(h), volsName, strconv.Itoa(i))
}

// mountVolume attaches the ID-mapped mount of read-write volume i.
func (d *Driver) mountVolume(h string, m *boxMeta, i int) error {
	target := d.volumeSource(h, m, i)
	if mountutil.IsMounted(target) {
		return nil
	}
	if err := rootfs.Mkdirs(filepath.Dir(target)); err != nil {
		return err
	}
	st, err := os.Stat(m.Volumes[i].HostPath)
	if err != nil {
		return fmt.Errorf("volume %s: %w", m.Volumes[i].HostPath, err)
	}
	if st.IsDir() {
		err = rootfs.Mkdirs(target)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return err
	}
	return rootfs.BindShifted(m.Volumes[i].HostPath, target, *m.Shift)
}

// unmountRoot unmounts everything the driver mounted under the box dir of h
// (the overlay first, the disk last); the loop device goes with the disk's
// mount.
func (d *Driver) unmountRoot(h string) error {
	return mountutil.UnmountUnder(d.boxDir(h))
}

// probeShift checks that this host can make ID-mapped mounts, by making
// one of dir onto a scratch directory and removing it.
func probeShift(dir string, s rootfs.IDShift) error {
	target, err := os.MkdirTemp(dir, "idmap-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(target)
	if err := rootfs.BindShifted(dir, target, s); err != nil {
		return err
	}
	if err := mountutil.Unmount(target); err != nil {
		return errors.Join(err, fmt.Errorf("probe mount left at %s", target))
	}
	return nil
}
