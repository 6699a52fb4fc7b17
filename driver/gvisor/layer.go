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

	"github.com/boxrun/boxrun/boxapi"
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
//	<box>/vols/N     an ID-mapped bind mount of volume N (see volumeSource)
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
		if err := d.makeDisk(ctx, filepath.Join(bd, diskImgName), m.DiskGB); err != nil {
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
		for i := range m.Volumes {
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
// volume itself for a box without shifted IDs, else its ID-mapped mount
// (rootfs.BindVolume: box ID n is host Base+n, box root is the volume's
// owner when that is an ordinary user, host root is nobody; read-only
// volumes are read-only on the host side too). So a box cannot make a
// file of host root's in a volume, nor read one that only root may read.
func (d *Driver) volumeSource(h string, m *boxMeta, i int) string {
	if m.Shift == nil {
		return m.Volumes[i].HostPath
	}
	return filepath.Join(d.boxDir(h), volsName, strconv.Itoa(i))
}

// mountVolume attaches the ID-mapped mount of volume i (see volumeSource).
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
	if err := rootfs.BindVolume(m.Volumes[i].HostPath, target, *m.Shift, m.Volumes[i].Readonly); err != nil {
		return fmt.Errorf("volume %s (its file system must support ID-mapped mounts): %w", m.Volumes[i].HostPath, err)
	}
	return nil
}

// checkVolumeOwners refuses, for a driver that shifts IDs, a read-write
// volume whose host path belongs to host root (user or group 0): host root
// is never mapped into a box (see rootfs.BindVolume), and the kernel lets
// nobody write through an ID-mapped mount to a file whose owner or group is
// unmapped, so the box could not write there at all. The fix is the
// caller's: give the directory to a user (box root then acts as that user
// there) or to the box range, or mount it read-only.
func (d *Driver) checkVolumeOwners(vols []boxapi.Volume) error {
	if d.shift == nil {
		return nil
	}
	for _, v := range vols {
		if v.Readonly {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(v.HostPath, &st); err != nil {
			return fmt.Errorf("gvisor: volume host path: %w: %w", err, boxapi.ErrInvalid)
		}
		if st.Uid == 0 || st.Gid == 0 {
			return fmt.Errorf("gvisor: read-write volume %s belongs to host root (%d:%d), and box root is not host root: "+
				"give it to a user (chown; box root then writes as that user) or to the box ID range (%d), or mount it read-only: %w",
				v.HostPath, st.Uid, st.Gid, d.shift.Base, boxapi.ErrInvalid)
		}
	}
	return nil
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

// makeDisk creates the disk image img of sizeGB GiB: a sparse copy of the
// driver's empty image of that size (<Dir>/disk-templates/<size>g.img,
// made by mkfs the first time it is needed).
func (d *Driver) makeDisk(ctx context.Context, img string, sizeGB int64) error {
	tmpl, err := d.diskTemplate(ctx, sizeGB)
	if err != nil {
		return err
	}
	return rootfs.CopyDisk(tmpl, img)
}

// diskTemplate returns the empty disk image of sizeGB GiB, making it when
// missing (through a temporary name, so a crash never leaves half of one).
func (d *Driver) diskTemplate(ctx context.Context, sizeGB int64) (string, error) {
	dir := filepath.Join(d.dir, "disk-templates")
	p := filepath.Join(dir, fmt.Sprintf("%dg.img", sizeGB))
	d.tmplMu.Lock()
	defer d.tmplMu.Unlock()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	_ = os.Remove(tmp)
	if err := rootfs.MakeDisk(ctx, tmp, sizeGB); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return p, nil
}
