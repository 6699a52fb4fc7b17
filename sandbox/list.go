package sandbox

import (
	"context"

	"github.com/boxrun/boxrun/boxapi"
)

// Lister is implemented by drivers that can list a directory inside a
// running sandbox (through the in-box agent). List returns the entries of
// dir (absolute), sorted by name, at most boxapi.MaxListEntries, and
// whether some were left out. A missing dir is an error wrapping
// boxapi.ErrNotFound, a path that is not a directory boxapi.ErrInvalid.
// The Manager type-asserts it.
type Lister interface {
	List(ctx context.Context, handle, dir string) ([]boxapi.FileEntry, bool, error)
}
