package boxagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/boxrun/boxrun/agentproto"
)

// listBudget bounds the JSON of a list answer well below
// agentproto.MaxPayload (names are escaped, so their size varies).
const listBudget = agentproto.MaxPayload / 2

// list answers OpList: the entries of the directory dir, sorted by name,
// with what Lstat says of each (symlinks are not followed). At most
// agentproto.ListLimit entries and listBudget bytes of them; the rest is
// left out and the answer says so.
func list(dir string) agentproto.Result {
	if !filepath.IsAbs(dir) {
		return fail(agentproto.KindInvalid, fmt.Errorf("list: %q is not absolute", dir))
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fail(errKind(err), err)
	}
	if !fi.IsDir() {
		return fail(agentproto.KindInvalid, fmt.Errorf("list: %s is not a directory", dir))
	}
	f, err := os.Open(dir)
	if err != nil {
		return fail(errKind(err), err)
	}
	defer f.Close()
	// Read one more name than fits, to know whether there were more.
	names, err := f.Readdirnames(agentproto.ListLimit + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(errKind(err), err)
	}
	var res agentproto.Result
	if len(names) > agentproto.ListLimit {
		names, res.Truncated = names[:agentproto.ListLimit], true
	}
	sort.Strings(names)
	res.Entries = make([]agentproto.DirEntry, 0, len(names))
	size := 0
	for _, name := range names {
		e := agentproto.DirEntry{Name: name, Type: "other"}
		if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			e.Size, e.Mode, e.MTime = fi.Size(), uint32(fi.Mode().Perm()), fi.ModTime().Unix()
			switch {
			case fi.Mode().IsRegular():
				e.Type = "file"
			case fi.IsDir():
				e.Type = "dir"
			case fi.Mode()&fs.ModeSymlink != 0:
				e.Type = "symlink"
				e.Link, _ = os.Readlink(filepath.Join(dir, name))
			}
		} else if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		b, _ := json.Marshal(e)
		if size += len(b) + 1; size > listBudget {
			res.Truncated = true
			break
		}
		res.Entries = append(res.Entries, e)
	}
	return res
}
