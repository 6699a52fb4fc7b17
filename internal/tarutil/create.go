package tarutil

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
)

// Create writes to w a tar stream of the host file or directory src. See
// CreateRoot for the format. A missing src is an error wrapping
// fs.ErrNotExist.
func Create(ctx context.Context, w io.Writer, src string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	dir, base := filepath.Split(abs)
	if base == "" { // src is "/"
		dir, base = "/", "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	defer root.Close()
	return CreateRoot(ctx, w, root, base)
}

// CreateRoot writes to w a tar stream of name (a file or directory, "." for
// root itself) inside root, and closes the tar (not w). Entry names start
// with the base name of name, directories recursively, children sorted by
// name. Symlinks are stored as symlinks and never followed, name itself
// included. Files seen twice through hard links are stored once, then as hard
// links. Devices, FIFOs and sockets are skipped.
//
// A missing name is an error wrapping fs.ErrNotExist; a name that is
// absolute, has ".." or resolves through a symlink leading out of root is an
// error wrapping ErrUnsafePath. CreateRoot stops with ctx's error when ctx
// is done; w may then hold a partial stream.
func CreateRoot(ctx context.Context, w io.Writer, root *os.Root, name string) error {
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	if err := checkBeneath(root, path.Dir(name)); err != nil {
		return fmt.Errorf("create tar of %s: %w", name, err)
	}
	fi, err := root.Lstat(name)
	if err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	c := &creator{ctx: ctx, root: root, tw: tar.NewWriter(w), links: map[[2]uint64]string{}}
	if err := c.add(name, path.Base(name), fi); err != nil {
		return err
	}
	if err := c.tw.Close(); err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	return nil
}

// creator holds the state of one CreateRoot call.
type creator struct {
	ctx   context.Context
	root  *os.Root
	tw    *tar.Writer
	links map[[2]uint64]string // (dev, inode) of multiply linked files → first entry name
}

// add writes the entry for rel (a path in root, described by fi) under the
// archive name arc, and recurses into directories.
func (c *creator) add(rel, arc string, fi fs.FileInfo) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var link string
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := c.root.Readlink(rel)
		if err != nil {
			return fmt.Errorf("create tar: %w", err)
		}
		link = target
	default:
		return nil // devices, FIFOs, sockets
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("create tar: %s: %w", rel, err)
	}
	hdr.Name = arc
	hdr.Uname, hdr.Gname = "", ""
	if fi.IsDir() {
		hdr.Name += "/"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
		if first, seen := c.links[key]; seen {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			c.links[key] = arc
		}
	}
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("create tar: %s: %w", rel, err)
	}
	switch {
	case hdr.Typeflag == tar.TypeReg:
		return c.copyFile(rel, hdr.Size)
	case fi.IsDir():
		return c.addDir(rel, arc)
	}
	return nil
}

// copyFile writes the content of the regular file rel: exactly size bytes,
// as announced in its header.
func (c *creator) copyFile(rel string, size int64) error {
	f, err := c.root.Open(rel)
	if err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(c.tw, io.LimitReader(ctxReader{c.ctx, f}, size))
	if err != nil {
		return fmt.Errorf("create tar: %s: %w", rel, err)
	}
	if n != size {
		return fmt.Errorf("create tar: %s shrank while being read", rel)
	}
	return nil
}

// addDir adds the children of the directory rel, sorted by name.
func (c *creator) addDir(rel, arc string) error {
	d, err := c.root.Open(rel)
	if err != nil {
		return fmt.Errorf("create tar: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("create tar: %s: %w", rel, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int {
		switch {
		case a.Name() < b.Name():
			return -1
		case a.Name() > b.Name():
			return 1
		}
		return 0
	})
	for _, e := range entries {
		child := path.Join(rel, e.Name())
		fi, err := c.root.Lstat(child)
		if err != nil {
			return fmt.Errorf("create tar: %w", err)
		}
		if err := c.add(child, path.Join(arc, e.Name()), fi); err != nil {
			return err
		}
	}
	return nil
}
