// Package rootfs prepares the root filesystem of a gvisor box on the host:
// the overlay mount and the directories a box needs before its sandbox
// starts. Both the driver (as root, in the host's mount namespace) and the
// in-box helper's host mode (rootless, inside the user and mount namespace
// that then runs runsc) use it.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOverlay mounts an overlayfs at target: lower read-only, upper and
// work the box's own directories. Inside a user namespace, upper and work
// must belong to the namespace's root or the mount is read-only.
func MountOverlay(lower, upper, work, target string) error {
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay path %q contains , : or \\", p)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}

// Prepare creates what every box needs in its mounted root before the
// sandbox starts: the working directory workdir (mode 0755 where new) and,
// when the image has none, /tmp (mode 1777).
func Prepare(root, workdir string) error {
	if err := MkdirInRoot(root, workdir, 0o755); err != nil {
		return fmt.Errorf("workdir: %w", err)
	}
	if !ExistsInRoot(root, "/tmp") {
		if err := MkdirInRoot(root, "/tmp", 0o1777); err != nil {
			return fmt.Errorf("/tmp: %w", err)
		}
	}
	return nil
}

// MkdirInRoot creates the directory p (absolute inside the box) and its
// parents under root, resolving every component as if root were "/":
// symlinks in the image cannot lead the host out of root. Existing
// directories are kept as they are; new ones get mode.
func MkdirInRoot(root, p string, mode uint32) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	parts := strings.Split(strings.Trim(filepath.Clean("/"+p), "/"), "/")
	cur := "/"
	for _, name := range parts {
		if name == "" {
			continue
		}
		parent, err := unix.Openat2(rootFD, cur, how)
		if err != nil {
			return fmt.Errorf("open %s in box: %w", cur, err)
		}
		err = unix.Mkdirat(parent, name, mode)
		if err == nil {
			// Mkdirat applies the umask; set the exact mode.
			_ = unix.Fchmodat(parent, name, mode, 0)
		}
		unix.Close(parent)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mkdir %s in box: %w", filepath.Join(cur, name), err)
		}
		cur = filepath.Join(cur, name)
	}
	// The result must be a directory (it may be a symlink to one).
	fd, err := unix.Openat2(rootFD, cur, how)
	if err != nil {
		return fmt.Errorf("%s in box is not a directory: %w", cur, err)
	}
	unix.Close(fd)
	return nil
}

// ExistsInRoot reports whether p exists inside root (resolved in root).
func ExistsInRoot(root, p string) bool {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(rootFD)
	fd, err := unix.Openat2(rootFD, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
