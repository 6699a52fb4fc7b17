package boxapi

import "time"

// FileEntry is one entry of a directory in a box (Manager.ListFiles).
// Type is "file", "dir", "symlink" or "other"; Link is a symlink's
// target. The box reports its entries itself: treat them as display data.
type FileEntry struct {
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"` // permission bits, octal ("0644")
	ModTime time.Time `json:"mtime"`
	Link    string    `json:"link,omitempty"`
}

// FileList is a directory of a box (Manager.ListFiles): its absolute
// path, its entries sorted by name, and whether more entries were left out
// (at most MaxListEntries are listed).
type FileList struct {
	BoxID     string      `json:"box_id"`
	Path      string      `json:"path"`
	Entries   []FileEntry `json:"entries"`
	Truncated bool        `json:"truncated"`
}

// MaxListEntries bounds the entries of one FileList.
const MaxListEntries = 5000
