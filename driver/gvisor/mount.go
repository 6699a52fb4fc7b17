package gvisor

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts an overlayfs at target: lower read-only, upper and work
// the box's own directories.
func mountOverlay(lower, upper, work, target string) error {
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

// unmountAll unmounts target until nothing is mounted there. A busy mount is
// retried for a moment and then detached lazily.
func unmountAll(target string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case errors.Is(err, unix.EBUSY) && i < 20:
			time.Sleep(10 * time.Millisecond)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}

// mountsUnder lists the mount points in /proc/self/mountinfo at or below
// dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Deepest first, so nested mounts go before their parents.
	for i := 0; i < len(out); i++ {
		for j := i + 1; j < len(out); j++ {
			if len(out[j]) > len(out[i]) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out, nil
}

// isMounted reports whether something is mounted exactly at dir.
func isMounted(dir string) bool {
	ms, err := mountsUnder(dir)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m == dir {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mkdirInRoot creates the directory p (absolute inside the box) and its
// parents under root, resolving every component as if root were "/":
// symlinks in the image cannot lead the host out of root. Existing
// directories are kept as they are; new ones get mode.
func mkdirInRoot(root, p string, mode uint32) error {
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

// existsInRoot reports whether p exists inside root (resolved in root).
func existsInRoot(root, p string) bool {
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
