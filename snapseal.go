package boxrun

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Snapshot seals (issue 14). A snapshot directory lives on the host for as
// long as the user keeps it, and its files came from a box: both a host
// attacker (or a bug, or a full disk) and a box that planted symbolic links
// in its own files could leave a directory that is no longer what was
// saved. So at checkpoint the Manager records a manifest of the directory
// in the snapshot's SQLite row: one line per entry (path, type, mode,
// owner, size, SHA-256 of the contents or the link target or the device
// number, extended attributes), sorted by path, never following a link.
// Every restore (and every resume of a hibernated box) recomputes the
// manifest under the snapshot's lock and refuses with ErrSnapshotCorrupt,
// naming the first entry that differs, before the driver reads anything:
// a truncated or modified memory image, swapped or added files, a file
// replaced by a symbolic link. Nothing is created when it refuses.
//
// What it does not cover: an attacker who can write the Manager's
// directory can also rewrite its SQLite database (the seal detects damage
// and tampering by anyone without that access, such as a box or another
// user's process), and a change made between the check and the driver's
// read (the directory is root's, mode 0700).

// snapshotManifest returns the manifest of dir (see above). Entries are
// read with Lstat and O_NOFOLLOW: a symbolic link is recorded as its
// target, never followed.
func snapshotManifest(ctx context.Context, dir string) (string, error) {
	var lines []string
	root, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !root.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		line, err := manifestLine(p, rel)
		if err != nil {
			return err
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// manifestLine describes one entry: quoted path, then tab-separated type,
// mode, uid, gid, size, content digest and xattrs.
func manifestLine(p, rel string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	var kind, content string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		kind = "d"
	case unix.S_IFREG:
		kind = "f"
		sum, err := hashNoFollow(p, st)
		if err != nil {
			return "", err
		}
		content = sum
	case unix.S_IFLNK:
		kind = "l"
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		content = strconv.Quote(t)
	case unix.S_IFCHR, unix.S_IFBLK:
		kind = "c"
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			kind = "b"
		}
		content = strconv.FormatUint(st.Rdev, 10)
	case unix.S_IFIFO:
		kind = "p"
	case unix.S_IFSOCK:
		kind = "s"
	default:
		kind = "?"
	}
	size := st.Size
	if kind == "d" {
		size = 0 // a directory's size depends on its history, not its entries
	}
	x, err := xattrDigest(p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s\t%s\t%o\t%d\t%d\t%d\t%s\t%s", strconv.Quote(rel), kind, st.Mode&^unix.S_IFMT,
		st.Uid, st.Gid, size, content, x), nil
}

// hashNoFollow returns the digest of the contents of the regular file p,
// opened without following a link and checked to be the file that was
// stat'ed. Contents are hashed in 64 KiB blocks with their offsets and
// all-zero blocks skipped, and only the file's data segments are read
// (SEEK_DATA): a sparse file of any size costs what it holds, and the
// digest is that of the contents whether zeros are stored or holes.
func hashNoFollow(p string, want unix.Stat_t) (string, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	if st.Dev != want.Dev || st.Ino != want.Ino || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s changed while it was read", p)
	}
	const block = 64 << 10
	h := sha256.New()
	buf := make([]byte, block)
	var hdr [8]byte
	next := int64(0) // the first block not hashed yet
	for off := int64(0); off < st.Size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if err != nil {
			data = off // no SEEK_DATA here: read everything
		}
		end, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || end > st.Size {
			end = st.Size
		}
		for b := max(data/block, next); b*block < end; b++ {
			n, err := f.ReadAt(buf, b*block)
			if err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			if !allZero(buf[:n]) {
				binary.BigEndian.PutUint64(hdr[:], uint64(b))
				h.Write(hdr[:])
				h.Write(buf[:n])
			}
			next = b + 1
		}
		off = max(end, next*block)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// xattrDigest returns the extended attributes of p (not followed) as a
// short digest ("-" when it has none). Overlay attributes such as
// trusted.overlay.opaque change what a layer shows.
func xattrDigest(p string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, syscall.ENODATA) {
		return "-", nil
	}
	if err != nil {
		return "", fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	h := sha256.New()
	count := 0
	for _, name := range names {
		if name == "" {
			continue
		}
		v, err := lgetxattr(p, name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%q=%x\n", name, v)
		count++
	}
	if count == 0 {
		return "-", nil
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

func lgetxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			if len(buf) > 1<<20 {
				return nil, fmt.Errorf("xattr %s of %s: too large", name, p)
			}
			continue
		}
		if errors.Is(err, syscall.ENODATA) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s of %s: %w", name, p, err)
		}
		return buf[:n], nil
	}
}

// verifySnapshot recomputes the manifest of snapshot s's directory and
// compares it with the one sealed at checkpoint. A mismatch is a
// RUNTIME_ERROR wrapping ErrSnapshotCorrupt naming the first difference.
func (m *Manager) verifySnapshot(ctx context.Context, s *snapRow) error {
	want, ok, err := m.store.snapshotManifest(ctx, s.ID)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Code: CodeRuntimeError, Err: ErrSnapshotCorrupt,
			Message: fmt.Sprintf("Snapshot '%s' has no integrity seal (taken by an older version or never finished): it cannot be verified and is not restored", s.ID)}
	}
	got, err := snapshotManifest(ctx, m.snapPath(s.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{Code: CodeRuntimeError, Err: fmt.Errorf("%w: %w", ErrSnapshotCorrupt, err),
			Message: fmt.Sprintf("Snapshot '%s' has lost its files: it cannot be restored", s.ID)}
	}
	if err != nil {
		return Errorf(CodeRuntimeError, "Failed to verify snapshot '%s': %w", s.ID, err)
	}
	if got == want {
		return nil
	}
	return &Error{Code: CodeRuntimeError, Err: ErrSnapshotCorrupt,
		Message: fmt.Sprintf("Snapshot '%s' was modified on the host since it was taken (%s): it is not restored", s.ID, manifestDiff(want, got))}
}

// manifestDiff names the first entry in which two manifests differ.
func manifestDiff(want, got string) string {
	index := func(s string) map[string]string {
		out := map[string]string{}
		for _, l := range strings.Split(s, "\n") {
			if path, rest, ok := strings.Cut(l, "\t"); ok {
				out[path] = rest
			}
		}
		return out
	}
	w, g := index(want), index(got)
	var diffs []string
	for p, wl := range w {
		gl, ok := g[p]
		switch {
		case !ok:
			diffs = append(diffs, p+" is missing")
		case gl != wl:
			diffs = append(diffs, p+" "+describeChange(wl, gl))
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, p+" was added")
		}
	}
	if len(diffs) == 0 {
		return "its file list differs"
	}
	sort.Strings(diffs)
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return strings.Join(diffs, "; ")
}

// describeChange says how one manifest entry changed.
func describeChange(want, got string) string {
	w, g := strings.Split(want, "\t"), strings.Split(got, "\t")
	if len(w) != 7 || len(g) != 7 {
		return "changed"
	}
	switch {
	case w[0] != g[0]:
		return fmt.Sprintf("changed type (%s, was %s)", kindName(g[0]), kindName(w[0]))
	case w[4] != g[4] && w[0] == "f":
		return fmt.Sprintf("changed size (%s bytes, was %s)", g[4], w[4])
	case w[5] != g[5]:
		return "changed contents"
	case w[1] != g[1] || w[2] != g[2] || w[3] != g[3]:
		return "changed mode or owner"
	}
	return "changed attributes"
}

func kindName(k string) string {
	switch k {
	case "d":
		return "directory"
	case "f":
		return "file"
	case "l":
		return "symbolic link"
	}
	return "special file"
}

// sealDigest is a short digest of a manifest, for logs.
func sealDigest(manifest string) string {
	sum := sha256.Sum256([]byte(manifest))
	return hex.EncodeToString(sum[:8])
}
