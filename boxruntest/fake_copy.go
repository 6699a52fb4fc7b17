package boxruntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/internal/tarutil"
	"github.com/boxrun/boxrun/sandbox"
)

// rootPath maps an absolute box path to a path relative to the box's fs
// directory ("." for "/").
func rootPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute: %w", p, boxrun.ErrInvalid)
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// copyErr wraps the kinds the Driver contract asks for around a tarutil error.
func copyErr(op, p string, err error) error {
	switch {
	case errors.Is(err, tarutil.ErrUnsafePath):
		return fmt.Errorf("fake: %s %s: %w: %w", op, p, boxrun.ErrInvalid, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("fake: %s %s: %w: %w", op, p, boxrun.ErrNotFound, err)
	}
	return fmt.Errorf("fake: %s %s: %w", op, p, err)
}

// openBoxRoot opens the fs directory of a box that exists (running or not).
func (d *FakeDriver) openBoxRoot(handle string) (*os.Root, error) {
	st, err := d.State(context.Background(), handle)
	if err != nil {
		return nil, err
	}
	if st == sandbox.Missing {
		return nil, fmt.Errorf("fake: box %s: %w", handle, boxrun.ErrNotFound)
	}
	return os.OpenRoot(d.fsDir(handle))
}

// CopyIn extracts r into the box directory dst, confined to the box.
func (d *FakeDriver) CopyIn(ctx context.Context, handle, dst string, r io.Reader) error {
	rel, err := rootPath(dst)
	if err != nil {
		return fmt.Errorf("fake: copy in: %w", err)
	}
	root, err := d.openBoxRoot(handle)
	if err != nil {
		return err
	}
	defer root.Close()
	sub, err := tarutil.OpenDir(root, rel, true)
	if err != nil {
		return copyErr("copy in", dst, err)
	}
	defer sub.Close()
	if err := tarutil.ExtractRoot(ctx, r, sub); err != nil {
		return copyErr("copy in", dst, err)
	}
	return nil
}

// CopyOut writes a tar of the box path src to w, confined to the box.
func (d *FakeDriver) CopyOut(ctx context.Context, handle, src string, w io.Writer) error {
	rel, err := rootPath(src)
	if err != nil {
		return fmt.Errorf("fake: copy out: %w", err)
	}
	root, err := d.openBoxRoot(handle)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := tarutil.CreateRoot(ctx, w, root, rel); err != nil {
		return copyErr("copy out", src, err)
	}
	return nil
}
