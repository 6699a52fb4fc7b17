package boxrun

import (
	"context"
	"errors"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

type (
	// FileEntry is one entry of a directory in a box (ListFiles).
	FileEntry = boxapi.FileEntry
	// FileList is a directory of a box (ListFiles).
	FileList = boxapi.FileList
)

// MaxListEntries bounds the entries of one ListFiles answer.
const MaxListEntries = boxapi.MaxListEntries

// maxListPath bounds the path ListFiles takes.
const maxListPath = 4096

// ListFiles returns the entries of the directory dir in a running box
// (relative dir is taken from the box's workdir), sorted by name, at most
// boxapi.MaxListEntries (Truncated says more were left out). Symlinks are
// reported, not followed. The entries come from the box's agent: a box
// can make them up, so they are display data. Errors: BOX_NOT_FOUND,
// BOX_NOT_RUNNING, FILE_NOT_FOUND (no such directory), VALIDATION_ERROR
// (not a directory, NUL in dir), RUNTIME_ERROR (the driver cannot list).
func (m *Manager) ListFiles(ctx context.Context, box, dir string) (*FileList, error) {
	if dir == "" || len(dir) > maxListPath || strings.ContainsRune(dir, 0) {
		return nil, Errorf(CodeValidationError, "path must be a directory in the box (at most %d bytes, no NUL)", maxListPath)
	}
	ls, ok := m.driver.(sandbox.Lister)
	if !ok {
		return nil, Errorf(CodeRuntimeError, "The %s driver cannot list files", m.driver.Name())
	}
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, done, err := m.agentHandle(ctx, box)
	if err != nil {
		return nil, err
	}
	defer done()
	p := boxPath(b, dir)
	ents, more, err := ls.List(ctx, b.Handle, p)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrNotFound):
			return nil, &Error{Code: CodeFileNotFound, Message: "Directory '" + dir + "' not found in box", Err: err}
		case errors.Is(err, ErrInvalid):
			return nil, Errorf(CodeValidationError, "Cannot list '%s': %w", dir, err)
		case errors.Is(err, ErrConflict):
			return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running", b.ID)
		}
		return nil, Errorf(CodeRuntimeError, "Failed to list '%s' in box '%s': %w", dir, b.ID, err)
	}
	if len(ents) > MaxListEntries {
		ents, more = ents[:MaxListEntries], true
	}
	if ents == nil {
		ents = []FileEntry{}
	}
	return &FileList{BoxID: b.ID, Path: p, Entries: ents, Truncated: more}, nil
}
