package rootfs

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// IDShift describes how a box's IDs are stored on the host: box ID n
// (n < Size) is host ID Base+n, for users and groups alike.
type IDShift struct {
	Base, Size uint32
}

// BindShifted attaches at target an ID-mapped bind mount of the directory
// src (not recursive): through it a file stored as host ID Base+n appears
// as n, and a file created by a process whose fsuid is n is stored as
// Base+n. Host IDs outside the range appear as the overflow ID (nobody),
// and a process without a mapped ID cannot create files there. target must
// exist. Needs root (CAP_SYS_ADMIN) and a file system that supports
// ID-mapped mounts (ext4, xfs, btrfs, tmpfs on Linux 6.3+).
func BindShifted(src, target string, s IDShift) error {
	if s.Size == 0 {
		return fmt.Errorf("id-mapped mount of %s: empty ID range", src)
	}
	return bindMapped(src, target, func(unix.Stat_t) ([]idExtent, []idExtent) {
		return s.extents(), s.extents()
	}, 0)
}

// BindVolume attaches at target an ID-mapped, nosuid, nodev bind mount of
// the volume src (a directory or a file; not recursive), read-only on the
// host too when readonly is set. The mapping is the box's (box ID n is
// host Base+n) except for box ID 0 when src belongs to an ordinary host
// user: then box root is that owner there (user and group separately), so
// what box root creates belongs to the volume's owner, as when the owner
// had written it. Host ID 0 is never mapped: files of host root's are
// nobody's to the box, and the kernel refuses any write to a file or
// directory whose owner or group is not mapped. The owner is read from
// the mount itself (no race with a rename of src).
func BindVolume(src, target string, s IDShift, readonly bool) error {
	if s.Size < 2 {
		return fmt.Errorf("id-mapped mount of %s: ID range too small", src)
	}
	var attr uint64
	if readonly {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	return bindMapped(src, target, func(st unix.Stat_t) ([]idExtent, []idExtent) {
		return s.ownerExtents(st.Uid), s.ownerExtents(st.Gid)
	}, attr)
}

// idExtent is one range of a mount's ID mapping: host IDs Host..Host+Size-1
// are seen (and stored) through the mount as box IDs Box..Box+Size-1.
type idExtent struct{ Box, Host, Size uint32 }

// extents is the plain mapping of the box's range.
func (s IDShift) extents() []idExtent { return []idExtent{{Box: 0, Host: s.Base, Size: s.Size}} }

// ownerExtents is the mapping of a volume owned by host ID owner: box ID 0
// is owner unless owner is host root or already in the box's range.
func (s IDShift) ownerExtents(owner uint32) []idExtent {
	if owner == 0 || owner-s.Base < s.Size {
		return s.extents()
	}
	return []idExtent{{Box: 0, Host: owner, Size: 1}, {Box: 1, Host: s.Base + 1, Size: s.Size - 1}}
}

// sysMap is the uid_map of the holder namespace for extents: its own IDs
// are the stored (host) IDs, its parent's the IDs seen through the mount.
func sysMap(ext []idExtent) []syscall.SysProcIDMap {
	m := make([]syscall.SysProcIDMap, len(ext))
	for i, e := range ext {
		m[i] = syscall.SysProcIDMap{ContainerID: int(e.Host), HostID: int(e.Box), Size: int(e.Size)}
	}
	return m
}

// bindMapped clones the mount at src, ID-maps it with the extents mapFor
// returns for the owner of src, sets nosuid, nodev and attr, and attaches
// it at target.
func bindMapped(src, target string, mapFor func(unix.Stat_t) (uids, gids []idExtent), attr uint64) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	uids, gids := mapFor(st)
	nsFD, err := shiftedUserNS(sysMap(uids), sysMap(gids))
	if err != nil {
		return fmt.Errorf("id-mapped mount of %s: %w", src, err)
	}
	defer unix.Close(nsFD)
	ma := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | attr, Userns_fd: uint64(nsFD)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, ma); err != nil {
		return fmt.Errorf("id-map the mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the id-mapped mount of %s at %s: %w", src, target, err)
	}
	return nil
}

// shiftedUserNS returns a descriptor of a new user namespace with the given
// ID maps: the ID mapping of a mount (for the plain shift, its ID Base+n is
// host ID n, so the mount shows host Base+n as n). It is the namespace of
// a child that is stopped (ptrace) before it runs any code of its own,
// then killed.
func shiftedUserNS(uids, gids []syscall.SysProcIDMap) (int, error) {
	p, err := os.StartProcess("/proc/self/exe", []string{"boxrun-idmap-holder"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: uids,
		GidMappings: gids,
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}})
	if err != nil {
		return -1, fmt.Errorf("start a process in a new user namespace: %w", err)
	}
	defer func() {
		_ = p.Kill()
		_, _ = p.Wait()
	}()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the user namespace of %d: %w", p.Pid, err)
	}
	// The child is still ours (not reaped, so its PID was not reused):
	// the namespace is the one made above.
	if err := p.Signal(syscall.Signal(0)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("user namespace holder: %w", err)
	}
	return fd, nil
}
