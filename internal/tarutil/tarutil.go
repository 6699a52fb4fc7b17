// Package tarutil extracts and creates tar streams confined to a directory.
//
// It is the copy engine behind Driver.CopyIn and Driver.CopyOut: the fake
// driver runs it on the host against a box directory, and sandbox drivers run
// it inside the box (in a static helper binary), so it depends on the Go
// standard library only and needs no cgo.
//
// # Confinement
//
// Every file operation goes through an [os.Root], so nothing is ever read or
// written outside the root directory, even when a symlink is swapped in
// concurrently. Before touching the file system, each entry is also checked
// step by step (Lstat and Readlink of each parent component): an entry with
// an absolute name, a ".." component, or a parent path that resolves through
// a symlink leading out of the root (an absolute symlink or a relative one
// with too many ".."), is rejected with an error wrapping [ErrUnsafePath].
// Callers turn that into their own error kind (the drivers wrap
// boxrun.ErrInvalid around it); this package imports nothing of boxrun.
//
// A symlink entry may point anywhere: it is created as given and never
// followed when writing. A file entry whose name already exists as a symlink
// replaces the symlink rather than writing through it.
//
// # Archives from a box
//
// A tar stream that comes out of a box is written by code the box controls
// (it can stop the in-box helper and write its own bytes to the helper's
// stdout). Host-side extraction of such a stream uses [ExtractUntrusted],
// which adds: confinement to the one copied name, no symlink traversal at
// all, no setuid/setgid bits, hard links only to files of the same archive,
// and size bounds.
package tarutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrUnsafePath is wrapped by the errors for tar entries and paths that would
// leave the root: absolute names, ".." components, and paths through symlinks
// that lead outside the root.
var ErrUnsafePath = errors.New("path escapes the destination")

// maxSymlinks bounds symlink expansion while resolving one path (as the
// kernel's ELOOP limit does).
const maxSymlinks = 40

// cleanName validates a tar entry name (or hard link target) and returns it
// cleaned and relative ("." for the root itself). Leading "./" is fine;
// absolute names and ".." components are not.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty entry name: %w", ErrUnsafePath)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute entry name %q: %w", name, ErrUnsafePath)
	}
	for _, p := range strings.Split(name, "/") {
		if p == ".." {
			return "", fmt.Errorf("entry name %q has a \"..\" component: %w", name, ErrUnsafePath)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry name %q has a NUL byte: %w", name, ErrUnsafePath)
	}
	return path.Clean(name), nil
}

// lstater is the part of *os.Root that resolution needs.
type lstater interface {
	Lstat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
}

// checkBeneath reports, with an error wrapping ErrUnsafePath, whether
// resolving dir (a clean relative path) inside root follows a symlink out of
// it. Components that do not exist yet are resolved lexically (they will be
// created as directories). A component that exists but is not a directory is
// an error too.
func checkBeneath(root lstater, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	todo := strings.Split(dir, "/")
	var stack []string // resolved components: real directories, or not yet existing
	links := 0
	missing := false
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("%q resolves outside the destination: %w", dir, ErrUnsafePath)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if missing {
			stack = append(stack, p)
			continue
		}
		cur := path.Join(append(stack, p)...)
		fi, err := root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			missing = true
			stack = append(stack, p)
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return fmt.Errorf("%q: too many levels of symbolic links: %w", dir, ErrUnsafePath)
			}
			target, err := root.Readlink(cur)
			if err != nil {
				return err
			}
			if strings.HasPrefix(target, "/") {
				return fmt.Errorf("%q goes through the absolute symlink %s -> %s: %w", dir, cur, target, ErrUnsafePath)
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !fi.IsDir() {
			return fmt.Errorf("%q: %s is not a directory", dir, cur)
		}
		stack = append(stack, p)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so a long copy stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// OpenDir returns a Root for the directory name (relative, "." for root
// itself) inside root, first creating it and its missing parents (mode 0755)
// when create is set. Symlinks on the way are followed only while they stay
// inside root; a name that is absolute, has "..", or resolves out of root is
// an error wrapping ErrUnsafePath. A missing directory (create unset) is an
// error wrapping fs.ErrNotExist. The caller closes the returned Root.
func OpenDir(root *os.Root, name string, create bool) (*os.Root, error) {
	name, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	if err := checkBeneath(root, name); err != nil {
		return nil, err
	}
	if create && name != "." {
		if err := root.MkdirAll(name, 0o755); err != nil {
			return nil, err
		}
	}
	return root.OpenRoot(name)
}
