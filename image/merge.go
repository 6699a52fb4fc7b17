package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// merger applies unpacked layer directories, lowest first, to a root
// filesystem directory the way overlayfs stacks them: whiteouts delete from
// the layers below, opaque directories hide them, a directory over a
// non-directory (or the reverse) replaces it. Files are hard-linked from the
// layer directory, so an image rootfs costs only inodes.
//
// Layer directories come from unpackTar, so they hold only regular files,
// directories, symlinks, devices and fifos, and the merger never follows a
// symlink: every directory it descends into in root was created or checked
// as a real directory first.
type merger struct {
	root   string
	isRoot bool
}

// apply merges the layer whose fs dir is layer and whose metadata is meta.
func (m *merger) apply(layer string, meta *layerMeta) error {
	implicit := make(map[string]bool, len(meta.Implicit))
	for _, d := range meta.Implicit {
		implicit[d] = true
	}
	if err := m.dir(layer, ".", implicit); err != nil {
		return err
	}
	for _, l := range meta.Links {
		if err := m.link(l); err != nil {
			return err
		}
	}
	return nil
}

func (m *merger) dir(layer, rel string, implicit map[string]bool) error {
	src := filepath.Join(layer, filepath.FromSlash(rel))
	dst := filepath.Join(m.root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	// Whiteouts first: they apply to the layers below only.
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == opaqueMarker:
			if err := clearDir(dst); err != nil {
				return err
			}
		case strings.HasPrefix(name, whiteoutPrefix):
			victim := strings.TrimPrefix(name, whiteoutPrefix)
			if victim == "" || victim == "." || victim == ".." || strings.Contains(victim, "/") {
				continue
			}
			if err := removeAll(filepath.Join(dst, victim)); err != nil {
				return err
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, whiteoutPrefix) {
			continue
		}
		child := path.Join(rel, name)
		s, d := filepath.Join(src, name), filepath.Join(dst, name)
		if !e.IsDir() {
			if err := removeAll(d); err != nil {
				return err
			}
			if err := linkOrCopy(s, d); err != nil {
				return fmt.Errorf("apply %s: %w", child, err)
			}
			continue
		}
		fi, err := os.Lstat(d)
		existed := err == nil && fi.IsDir()
		if err == nil && !fi.IsDir() {
			if err := os.Remove(d); err != nil {
				return err
			}
		}
		if !existed {
			if err := os.Mkdir(d, 0o700); err != nil {
				return err
			}
		}
		if err := m.dir(layer, child, implicit); err != nil {
			return err
		}
		// A directory the layer only made as a parent of its entries keeps
		// the attributes it had below.
		if !existed || !implicit[child] {
			if err := m.copyAttrs(s, d); err != nil {
				return fmt.Errorf("apply %s: %w", child, err)
			}
		}
	}
	return nil
}

// link makes a hard link recorded by unpackTar whose target lives in a
// lower layer, now present in root.
func (m *merger) link(l hardlink) error {
	ok, err := realParents(m.root, l.Target, nil)
	if err != nil {
		return err
	}
	target := filepath.Join(m.root, filepath.FromSlash(l.Target))
	var fi fs.FileInfo
	if ok {
		fi, err = os.Lstat(target)
	}
	if !ok || err != nil {
		return fmt.Errorf("hard link %s: target %s not found", l.Name, l.Target)
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: hard link %q to directory %q", errUnsafe, l.Name, l.Target)
	}
	// The link's own parent directories were made by the layer (dir above).
	ok, err = realParents(m.root, l.Name, nil)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("hard link %s: parent directory missing", l.Name)
	}
	name := filepath.Join(m.root, filepath.FromSlash(l.Name))
	if err := removeAll(name); err != nil {
		return err
	}
	return os.Link(target, name)
}

// copyAttrs gives directory dst the owner, mode, times and extended
// attributes of directory src.
func (m *merger) copyAttrs(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if m.isRoot {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	copyXattrs(src, dst)
	ts := []unix.Timespec{unix.Timespec(st.Atim), unix.Timespec(st.Mtim)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies extended attributes, best effort.
func copyXattrs(src, dst string) {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz <= 0 {
		return
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(src, buf)
	if err != nil {
		return
	}
	for _, key := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if !xattrAllowed(key, tar.TypeDir) {
			continue // a layer unpacked by an older version may hold others
		}
		vsz, err := unix.Lgetxattr(src, key, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(src, key, val); err == nil {
			unix.Lsetxattr(dst, key, val[:vsz], 0)
		}
	}
}

// clearDir deletes everything in dir (which the layers below made).
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// linkOrCopy hard-links src to dst, copying when linking is not possible
// (too many links to one inode).
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || !errors.Is(err, unix.EMLINK) {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular():
		return copyFile(src, dst, fi)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	default:
		return fmt.Errorf("link %s: %w", dst, unix.EMLINK)
	}
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	st := fi.Sys().(*syscall.Stat_t)
	if err == nil && os.Geteuid() == 0 {
		err = out.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = out.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	}
	return err
}
