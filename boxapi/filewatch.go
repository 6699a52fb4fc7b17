package boxapi

import "time"

// FileEventType names a change FileEvent reports.
type FileEventType string

// File event types. Every watch stream starts with FileWatchReady (Seq 0)
// and carries changes with increasing Seq after it.
const (
	// FileWatchReady is the first event of every stream (also a resumed
	// one): the watch is set up; WatchID names it for a resume.
	FileWatchReady FileEventType = "ready"
	FileCreated    FileEventType = "created"
	FileModified   FileEventType = "modified"
	FileRemoved    FileEventType = "removed"
	FileRenamed    FileEventType = "renamed" // OldPath → Path
	// FileOverflow reports that Dropped changes were lost: the box changed
	// files faster than they were read, or a resume asked for changes the
	// server no longer holds.
	FileOverflow FileEventType = "overflow"
)

// FileEvent is one event of a file watch (Service.Watch).
type FileEvent struct {
	WatchID string        `json:"watch_id"`
	Seq     int64         `json:"seq"` // 1, 2, … per watch; 0 for ready
	Type    FileEventType `json:"type"`
	Path    string        `json:"path,omitempty"`     // absolute path in the box
	OldPath string        `json:"old_path,omitempty"` // renamed: the previous path
	Dir     bool          `json:"dir,omitempty"`      // the path is a directory
	Dropped int64         `json:"dropped,omitempty"`  // overflow: changes lost
	Time    time.Time     `json:"time"`               // when the server got it
}

// WatchOptions tunes Service.Watch.
type WatchOptions struct {
	// Recursive watches every directory below the path as well.
	Recursive bool
	// WatchID resumes an existing watch (from its events' WatchID) instead
	// of starting one; the path and Recursive must match it or be empty.
	// A watch lives on for WatchLinger after its last reader left.
	WatchID string
	// AfterSeq, with WatchID, skips the events with Seq <= AfterSeq.
	AfterSeq int64
}

// Limits of file watches.
const (
	// WatchLinger is how long a watch with no reader is kept for a
	// resume before it is dropped.
	WatchLinger = time.Minute
	// WatchBacklog is how many events a watch keeps for resumes and slow
	// readers; older ones are reported as an overflow.
	WatchBacklog = 1024
	// MaxWatchesPerBox bounds the watches of one box.
	MaxWatchesPerBox = 16
)
