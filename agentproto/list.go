package agentproto

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// ListLimit bounds the entries of one list answer.
const ListLimit = 5000

// DirEntry is one entry of a directory (OpList). Type is "file", "dir",
// "symlink" or "other"; Link is a symlink's target. The agent runs inside
// the box: a host shows entries, it never trusts them.
type DirEntry struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Size  int64  `json:"size"`
	Mode  uint32 `json:"mode"`  // permission bits
	MTime int64  `json:"mtime"` // Unix seconds
	Link  string `json:"link,omitempty"`
}

// List returns the entries of the directory dir (absolute) in the box, and
// whether the agent left some out. Entries a conforming agent never sends
// (an empty name, ".", "..", a name with '/' or NUL, a repeated name, more
// than ListLimit) are a protocol error.
func (c *Conn) List(ctx context.Context, dir string) ([]DirEntry, bool, error) {
	res, err := c.Call(ctx, &Request{Op: OpList, Path: dir})
	if err != nil {
		return nil, false, err
	}
	if len(res.Entries) > ListLimit {
		return nil, false, fmt.Errorf("agent list: %d entries: %w", len(res.Entries), ErrProtocol)
	}
	seen := make(map[string]bool, len(res.Entries))
	for _, e := range res.Entries {
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") || seen[e.Name] || path.Clean(e.Name) != e.Name {
			return nil, false, fmt.Errorf("agent list: bad entry name %q: %w", e.Name, ErrProtocol)
		}
		seen[e.Name] = true
	}
	return res.Entries, res.Truncated, nil
}

// FileEntries converts list entries to the boxapi form drivers return.
func FileEntries(ents []DirEntry) []boxapi.FileEntry {
	out := make([]boxapi.FileEntry, len(ents))
	for i, e := range ents {
		switch e.Type {
		case "file", "dir", "symlink":
		default:
			e.Type = "other"
		}
		out[i] = boxapi.FileEntry{Name: e.Name, Type: e.Type, Size: e.Size, Mode: fmt.Sprintf("%04o", e.Mode&0o7777),
			ModTime: time.Unix(e.MTime, 0).UTC(), Link: e.Link}
	}
	return out
}
