package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// errUnsafe marks a layer entry that would escape the layer directory or
// write through a symlink; such a layer is rejected as a whole.
var errUnsafe = errors.New("unsafe layer entry")

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// layerMeta is stored as meta.json beside the fs dir of an unpacked layer.
type layerMeta struct {
	DiffID   string     `json:"diff_id"`
	Digest   string     `json:"digest,omitempty"` // compressed blob digest, when pulled from a registry
	Size     int64      `json:"size"`             // bytes of the blob (compressed if known, else the tar)
	Unpacked int64      `json:"unpacked"`         // bytes of regular file content
	Links    []hardlink `json:"links,omitempty"`  // hard links to files of lower layers
	Implicit []string   `json:"implicit,omitempty"`
}

// hardlink is a hard link whose target is not in its own layer. It is made
// when the layer is applied over the layers below it.
type hardlink struct {
	Name   string `json:"name"`
	Target string `json:"target"`
}

// dirAttr is the metadata of a directory entry, applied once the whole
// layer is unpacked (creating entries would change the mtime again).
type dirAttr struct {
	name string
	hdr  *tar.Header
}

// unpacker extracts one layer tar into an empty directory root. Whiteout
// and opaque markers are kept as the empty files they are in the tar.
// Entry names are confined to root: a name leaving it ("..") or a path
// through a symlink is an error (errUnsafe), never followed. root is private
// to the unpacker while it runs, so checks cannot race with other writers.
type unpacker struct {
	root   string
	isRoot bool
	dirs   map[string]bool // relative paths known to be real directories
	attrs  []dirAttr
	meta   *layerMeta
	buf    []byte
}

// unpackTar extracts the tar stream r into the directory root, which must
// exist and be empty.
func unpackTar(ctx context.Context, r io.Reader, root string, isRoot bool) (*layerMeta, error) {
	u := &unpacker{
		root:   root,
		isRoot: isRoot,
		dirs:   map[string]bool{".": true},
		meta:   &layerMeta{},
		buf:    make([]byte, 256<<10),
	}
	implicit := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		if err := u.entry(hdr, tr, implicit); err != nil {
			return nil, err
		}
	}
	for _, a := range u.attrs {
		if !isDir(u.path(a.name)) {
			continue // replaced by a later entry
		}
		if err := u.setAttrs(a.name, a.hdr, true); err != nil {
			return nil, err
		}
	}
	for name := range implicit {
		u.meta.Implicit = append(u.meta.Implicit, name)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	return u.meta, nil
}

// cleanName turns a tar entry name into a slash-separated path relative to
// the layer root ("" for the root itself). Absolute names are taken as
// relative to the root, as tar and Docker do; names climbing out with ".."
// are rejected.
func cleanName(name string) (string, error) {
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q leaves the layer", errUnsafe, name)
	}
	c = strings.TrimLeft(c, "/")
	if c == "." {
		c = ""
	}
	return c, nil
}

func (u *unpacker) path(rel string) string { return filepath.Join(u.root, filepath.FromSlash(rel)) }

func (u *unpacker) entry(hdr *tar.Header, r io.Reader, implicit map[string]bool) error {
	if err := checkHeader(hdr); err != nil {
		return err
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root keeps its own mode: 0755
	}
	if err := u.mkparents(path.Dir(name), implicit); err != nil {
		return err
	}
	p := u.path(name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			if err := u.remove(name); err != nil {
				return err
			}
			fallthrough
		default:
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		}
		u.dirs[name] = true
		delete(implicit, name)
		u.attrs = append(u.attrs, dirAttr{name, hdr})
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse: // sparse: the reader expands it
		if err := u.remove(name); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(f, r, u.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		u.meta.Unpacked += n
	case tar.TypeSymlink:
		if err := u.remove(name); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
	case tar.TypeLink:
		return u.link(name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		// Never created: see deviceNodes.
		return nil
	case tar.TypeFifo:
		if err := u.remove(name); err != nil {
			return err
		}
		if err := unix.Mknod(p, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("mkfifo %s: %w", name, err)
		}
	default:
		return nil // global headers, GNU extensions: nothing to create
	}
	return u.setAttrs(name, hdr, false)
}

// mkparents makes sure every component of the directory dir is a real
// directory, creating missing ones (recorded as implicit).
func (u *unpacker) mkparents(dir string, implicit map[string]bool) error {
	if u.dirs[dir] {
		return nil
	}
	if err := u.mkparents(path.Dir(dir), implicit); err != nil {
		return err
	}
	p := u.path(dir)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		implicit[dir] = true
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q is a symlink in the path of an entry", errUnsafe, dir)
	case !fi.IsDir():
		return fmt.Errorf("layer: %q is not a directory", dir)
	}
	u.dirs[dir] = true
	return nil
}

// remove deletes whatever is at name (forgetting directories under it), so
// that a new entry can take its place without following it.
func (u *unpacker) remove(name string) error {
	p := u.path(name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(p)
	}
	for d := range u.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(u.dirs, d)
		}
	}
	return removeAll(p)
}

// link makes name a hard link to target. A target outside the layer (or
// reached through a symlink) is an error; a target that is not in this layer
// is recorded for when the layer is applied over the lower ones.
func (u *unpacker) link(name, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: hard link %q to the root", errUnsafe, name)
	}
	if target == name {
		return nil
	}
	if err := u.remove(name); err != nil {
		return err
	}
	ok, err := realParents(u.root, target, u.dirs)
	if err != nil {
		return err
	}
	if ok {
		fi, err := os.Lstat(u.path(target))
		if err == nil {
			if fi.IsDir() {
				return fmt.Errorf("%w: hard link %q to directory %q", errUnsafe, name, target)
			}
			return os.Link(u.path(target), u.path(name))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	u.meta.Links = append(u.meta.Links, hardlink{Name: name, Target: target})
	return nil
}

// realParents reports whether every directory above rel (a clean relative
// path) exists under root as a real directory. A symlink on the way is an
// error. known caches directories already checked.
func realParents(root, rel string, known map[string]bool) (bool, error) {
	dir := path.Dir(rel)
	if dir == "." || known[dir] {
		return true, nil
	}
	ok, err := realParents(root, dir, known)
	if !ok || err != nil {
		return ok, err
	}
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(dir)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, fmt.Errorf("%w: %q is a symlink in the path of a hard link target", errUnsafe, dir)
	case !fi.IsDir():
		return false, nil
	}
	if known != nil {
		known[dir] = true
	}
	return true, nil
}

// setAttrs applies owner, mode, times and extended attributes of hdr to
// name. Owners are only set as root; as another user, directories stay
// owner-writable so later layers and Prune can still change them.
func (u *unpacker) setAttrs(name string, hdr *tar.Header, dir bool) error {
	p := u.path(name)
	symlink := hdr.Typeflag == tar.TypeSymlink
	if u.isRoot {
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
	}
	if !symlink {
		mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if dir && !u.isRoot {
			mode |= 0o700
		}
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if key, ok := strings.CutPrefix(k, paxXattr); ok && xattrAllowed(key, hdr.Typeflag) {
			// Best effort: some attributes need privileges or support the
			// filesystem lacks; the file itself is still right.
			unix.Lsetxattr(p, key, []byte(v), 0)
		}
	}
	mtime := hdr.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chtimes %s: %w", name, err)
	}
	return nil
}

// Layer entries from a registry or an archive are hostile input: the
// unpacker runs as root on the host and writes into the state directory.
//
// Extended attributes: only an allow-list is applied. user.* (application
// data) and security.capability (file capabilities, which images such as
// ping rely on; on regular files only) are kept; everything else is
// dropped, notably trusted.* (trusted.overlay.* would steer the overlay
// mounts built over the layers), security.selinux/smack labels of another
// system, and system.* ACLs that could open the host copy to other users.
//
// Device nodes: character and block devices are never created. Neither
// driver can use one from the rootfs (gVisor serves /dev itself and does
// not open host device files through the gofer; the QEMU guest mounts
// devtmpfs on /dev), no OCI format needs one (whiteouts are .wh. files), and
// a device node made as root in the image store would be a host device
// reachable by whoever can reach the file. FIFOs are created (no privilege).
const paxXattr = "SCHILY.xattr."

// maxXattrValue is the largest attribute value Linux accepts.
const maxXattrValue = 64 << 10

// xattrAllowed reports whether the attribute key may be applied to an
// entry of type typ (see above).
func xattrAllowed(key string, typ byte) bool {
	switch {
	case key == "security.capability":
		return typ == tar.TypeReg || typ == tar.TypeRegA || typ == tar.TypeCont || typ == tar.TypeGNUSparse
	case strings.HasPrefix(key, "user.") && len(key) > len("user."):
		return true
	}
	return false
}

// checkHeader validates the fields of hdr that the unpacker uses, before
// anything of the entry is created: a known type, owner IDs a file can
// have, attribute records of sane size. An invalid header rejects the
// layer (errUnsafe), and the layer's work directory is removed.
func checkHeader(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeXGlobalHeader:
	default:
		return fmt.Errorf("%w: %q has unsupported type %q", errUnsafe, hdr.Name, hdr.Typeflag)
	}
	// -1 means "unchanged" to chown; IDs past 2^32-2 do not exist.
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-2 || int64(hdr.Gid) > 1<<32-2 {
		return fmt.Errorf("%w: %q has owner %d:%d", errUnsafe, hdr.Name, hdr.Uid, hdr.Gid)
	}
	if hdr.Typeflag == tar.TypeSymlink && (hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0) {
		return fmt.Errorf("%w: symlink %q has an invalid target", errUnsafe, hdr.Name)
	}
	for k, v := range hdr.PAXRecords {
		if key, ok := strings.CutPrefix(k, paxXattr); ok && (key == "" || len(v) > maxXattrValue) {
			return fmt.Errorf("%w: %q has an invalid extended attribute %q", errUnsafe, hdr.Name, key)
		}
	}
	return nil
}
