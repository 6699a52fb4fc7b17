package image

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// removeAll is os.RemoveAll that also copes with directories whose mode
// denies writing (possible in image content when not running as root).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// isDir reports whether p is a directory (not following a final symlink).
func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// renameDir moves the finished directory tmp to dst. If dst exists already
// (another store or goroutine finished the same work first), tmp is
// discarded and the existing dst is kept.
func renameDir(tmp, dst string) error {
	err := os.Rename(tmp, dst)
	if err == nil {
		return nil
	}
	if isDir(dst) {
		removeAll(tmp)
		return nil
	}
	return err
}
