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
	nsFD, err := shiftedUserNS(s)
	if err != nil {
		return fmt.Errorf("id-mapped mount of %s: %w", src, err)
	}
	defer unix.Close(nsFD)
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Userns_fd: uint64(nsFD)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("id-map the mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the id-mapped mount of %s at %s: %w", src, target, err)
	}
	return nil
}

// shiftedUserNS returns a descriptor of a new user namespace whose ID Base+n
// is host ID n: the ID mapping of a mount that shows host Base+n as n. It is
// the namespace of a child that is stopped (ptrace) before it runs any code
// of its own, then killed.
func shiftedUserNS(s IDShift) (int, error) {
	m := []syscall.SysProcIDMap{{ContainerID: int(s.Base), HostID: 0, Size: int(s.Size)}}
	p, err := os.StartProcess("/proc/self/exe", []string{"boxrun-idmap-holder"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: m,
		GidMappings: m,
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
