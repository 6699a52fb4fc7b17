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

// ErrTooLarge is wrapped by ExtractUntrusted's error when an archive holds
// more bytes or entries than its Limits allow.
var ErrTooLarge = errors.New("archive exceeds the size limit")

// Limits bound what ExtractUntrusted writes. A zero field takes its default.
type Limits struct {
	// MaxBytes bounds the total size of regular file contents; default
	// DefaultMaxBytes. A header larger than what is left is refused before
	// anything of it is written.
	MaxBytes int64
	// MaxEntries bounds the number of entries; default DefaultMaxEntries.
	MaxEntries int
}

// Defaults of Limits.
const (
	DefaultMaxBytes   = 64 << 30
	DefaultMaxEntries = 1 << 20
)

// ExtractUntrusted extracts r, a tar stream that came out of a box and is
// therefore hostile, into root on the host. It is what every host-side copy
// out of a box uses. On top of ExtractRoot's confinement:
//
//   - every entry must be top or lie beneath top/ (top is a clean relative
//     name; "." admits every name inside root). An entry elsewhere, even
//     one that would stay inside root, is an error wrapping ErrUnsafePath;
//   - no symlink is ever traversed: a parent component of an entry that is a
//     symlink (one the archive planted, or one already on the host) is an
//     error wrapping ErrUnsafePath. Symlink entries themselves are created
//     as given, whatever their target, and existing files or symlinks at an
//     entry's name are replaced, never written through;
//   - setuid and setgid bits are dropped (the sticky bit and permissions are
//     kept); devices, FIFOs and other special entries are skipped;
//   - a hard link must point to a regular file extracted earlier by this
//     call, never to a file that was already on the host;
//   - the total size of file contents and the number of entries are bounded
//     by lim; a file that does not fit is refused (ErrTooLarge) before it is
//     created.
//
// Extraction stops at the first error, leaving the entries before it in
// place (all of them beneath top).
func ExtractUntrusted(ctx context.Context, r io.Reader, root *os.Root, top string, lim Limits) error {
	top, err := cleanName(top)
	if err != nil {
		return err
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}
	x := &extractor{root: root, strict: true, top: top, budget: lim.MaxBytes, files: lim.MaxEntries}
	return x.run(ctx, r)
}

// checkNoSymlinks reports, with an error wrapping ErrUnsafePath, whether any
// existing component of dir (a clean relative path) inside root is a
// symlink. Missing components are fine (they will be created as
// directories); an existing component that is not a directory is an error.
func checkNoSymlinks(root lstater, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	cur := ""
	for _, p := range strings.Split(dir, "/") {
		cur = path.Join(cur, p)
		fi, err := root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%q goes through the symlink %s: %w", dir, cur, ErrUnsafePath)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%q: %s is not a directory", dir, cur)
		}
	}
	return nil
}
