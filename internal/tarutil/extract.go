package tarutil

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Extract extracts the tar stream r into the host directory dst, creating
// dst (and its parents) if needed. dst itself is resolved as usual (symlinks
// in it are followed); every entry is then confined to it. See ExtractRoot
// for what is extracted.
//
// dst is created only once the stream's first header has been read, so a
// stream that is not a tar at all leaves nothing behind.
func Extract(ctx context.Context, r io.Reader, dst string) error {
	tr := tar.NewReader(ctxReader{ctx, r})
	first, err := tr.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read tar: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if first == nil {
		return nil
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer root.Close()
	return (&extractor{root: root}).extract(ctx, tr, first)
}

// ExtractRoot extracts the tar stream r into root. Entry names are relative
// to root; an entry leaving it is rejected with an error wrapping
// ErrUnsafePath (see the package doc), and extraction stops at the first
// error, leaving the entries before it in place.
//
// Regular files, directories, symlinks and hard links (whose target must be
// an earlier entry inside root) are extracted with their permission bits
// (including setuid, setgid and sticky) and modification times; directory
// times are set once all entries are in. Parent directories missing from the
// archive are created with mode 0755. Existing files and symlinks are
// replaced (never written through); an existing directory is kept and gets
// the entry's mode. Ownership is not restored: files belong to the caller.
// Other entry types (devices, FIFOs) are skipped.
//
// ExtractRoot stops with ctx's error when ctx is done.
func ExtractRoot(ctx context.Context, r io.Reader, root *os.Root) error {
	return (&extractor{root: root}).run(ctx, r)
}

// extractor holds the rules and state of one extraction. The zero rules are
// ExtractRoot's; ExtractUntrusted sets the strict ones.
type extractor struct {
	root *os.Root

	strict bool   // hostile source: see ExtractUntrusted
	top    string // strict: every entry is top or beneath it ("." for any)
	budget int64  // strict: bytes of file content still allowed
	files  int    // strict: entries still allowed

	// regular files extracted so far (strict: the only hard link targets)
	seen map[string]bool
}

// dirTime is a directory whose mode and times are set at the end.
type dirTime struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	return x.extract(ctx, tar.NewReader(ctxReader{ctx, r}), nil)
}

// extract extracts first (when not nil, a header already read from tr) and
// the rest of tr.
func (x *extractor) extract(ctx context.Context, tr *tar.Reader, first *tar.Header) error {
	root := x.root
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := first
		first = nil
		if hdr == nil {
			var err error
			hdr, err = tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read tar: %w", err)
			}
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if err := x.admit(hdr, name); err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		x.unsee(name)
		mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if x.strict {
			mode &^= fs.ModeSetuid | fs.ModeSetgid
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := extractDir(root, name); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirTime{name, mode, hdr.ModTime})
		case tar.TypeReg: // the reader reports legacy TypeRegA entries as TypeReg
			if name == "." {
				return fmt.Errorf("extract %q: a file cannot replace the destination: %w", hdr.Name, ErrUnsafePath)
			}
			if err := extractFile(root, name, mode, tr); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			x.see(name)
		case tar.TypeSymlink:
			if name == "." {
				return fmt.Errorf("extract %q: a symlink cannot replace the destination: %w", hdr.Name, ErrUnsafePath)
			}
			if err := prepare(root, name); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			if err := x.extractLink(name, hdr.Linkname); err != nil {
				return fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			x.see(name)
		default:
			// Devices, FIFOs and vendor types: skipped on purpose.
		}
	}
	return x.finishDirs(dirs)
}

// finishDirs applies the directories' modes and times: children first, so
// setting a child's time does not bump its parent's, and a read-only
// directory gets its mode only after it has been filled.
func (x *extractor) finishDirs(dirs []dirTime) error {
	slices.Reverse(dirs)
	for _, d := range dirs {
		if x.strict {
			// A later entry may have replaced the directory with a
			// symlink (Chmod would follow it) or moved it under one.
			if err := checkNoSymlinks(x.root, d.name); err != nil {
				continue
			}
			if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
				continue
			}
		}
		if err := x.root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("extract %s: %w", d.name, err)
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("extract %s: %w", d.name, err)
		}
	}
	return nil
}

// admit checks an entry against the rules before anything is written.
func (x *extractor) admit(hdr *tar.Header, name string) error {
	if !x.strict {
		return checkBeneath(x.root, path.Dir(name))
	}
	if x.top != "." && name != x.top && !strings.HasPrefix(name, x.top+"/") {
		return fmt.Errorf("entry outside the copied path %q: %w", x.top, ErrUnsafePath)
	}
	x.files--
	if x.files < 0 {
		return fmt.Errorf("more entries than allowed: %w", ErrTooLarge)
	}
	if hdr.Typeflag == tar.TypeReg {
		if hdr.Size < 0 || hdr.Size > x.budget {
			return fmt.Errorf("file of %d bytes exceeds the %d bytes left: %w", hdr.Size, x.budget, ErrTooLarge)
		}
		x.budget -= hdr.Size
	}
	return checkNoSymlinks(x.root, path.Dir(name))
}

func (x *extractor) see(name string) {
	if x.seen == nil {
		x.seen = map[string]bool{}
	}
	x.seen[name] = true
}

func (x *extractor) unsee(name string) { delete(x.seen, name) }

// prepare creates the parents of name and removes whatever non-directory
// (file or symlink) is at name, so the caller can create it afresh.
func prepare(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	_, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Remove does not follow a final symlink; a non-empty directory fails.
	return root.Remove(name)
}

// extractDir makes name a directory: an existing directory is kept, anything
// else at name is replaced. The mode is set at the end of extraction; until
// then the directory is writable by its owner.
func extractDir(root *os.Root, name string) error {
	if name == "." {
		return nil
	}
	fi, err := root.Lstat(name)
	if err == nil && fi.IsDir() {
		return root.Chmod(name, fi.Mode().Perm()|0o700)
	}
	if err := prepare(root, name); err != nil {
		return err
	}
	return root.Mkdir(name, 0o700)
}

// extractFile writes a new regular file at name with the content of r. The
// file is created with O_EXCL after removing what was there, so a symlink
// planted at name is never followed.
func extractFile(root *os.Root, name string, mode fs.FileMode, r io.Reader) error {
	if err := prepare(root, name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(name) // no truncated file left behind
	}
	return err
}

// extractLink makes name a hard link to target, an entry already extracted
// (strict: a regular file extracted earlier by this call, never a file that
// was on the host before).
func (x *extractor) extractLink(name, target string) error {
	root := x.root
	target, err := cleanName(target)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if name == "." || target == "." {
		return fmt.Errorf("hard link %q -> %q: %w", name, target, ErrUnsafePath)
	}
	if x.strict {
		if !x.seen[target] {
			return fmt.Errorf("hard link %q -> %q: target is not a file of this archive: %w", name, target, ErrUnsafePath)
		}
		if err := checkNoSymlinks(root, path.Dir(target)); err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
	} else if err := checkBeneath(root, path.Dir(target)); err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if name == target {
		return nil
	}
	if err := prepare(root, name); err != nil {
		return err
	}
	return root.Link(target, name)
}
