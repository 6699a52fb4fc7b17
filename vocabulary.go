package boxrun

import (
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// The vocabulary of BoxRun lives in package boxapi (standard library only, so
// that package client and httpapi link no SQLite and no driver). Every name is
// re-exported here, so library users only ever import boxrun.

// Boxes.
type (
	// BoxSpec describes a box to create; see boxapi.BoxSpec for defaults.
	BoxSpec = boxapi.BoxSpec
	// Box is the persisted record of a box (the API's Box object).
	Box = boxapi.Box
	// BoxStatus is a box's lifecycle state (StatusCreating, …).
	BoxStatus = boxapi.BoxStatus
	// BoxFilter selects boxes for List.
	BoxFilter = boxapi.BoxFilter
	// Volume mounts a host directory into a box.
	Volume = boxapi.Volume
	// Info reports a server's resource limits.
	Info = boxapi.Info
	// DriverInfo describes a Manager's driver.
	DriverInfo = boxapi.DriverInfo
	// BoxRuntime is how the driver runs one box right now (its agent).
	BoxRuntime = boxapi.BoxRuntime
)

// Box statuses and BoxSpec defaults.
const (
	StatusCreating = boxapi.StatusCreating
	StatusRunning  = boxapi.StatusRunning
	StatusStopped  = boxapi.StatusStopped
	StatusError    = boxapi.StatusError

	DefaultCPU = boxapi.DefaultCPU
	// DefaultRunOutputLimit is the output a Run collects by default.
	DefaultRunOutputLimit = boxapi.DefaultRunOutputLimit
	DefaultMemoryMB       = boxapi.DefaultMemoryMB
	DefaultDiskSizeGB     = boxapi.DefaultDiskSizeGB
	DefaultWorkdir        = boxapi.DefaultWorkdir
)

// Execs and their output.
type (
	// ExecRequest describes a command to run in a box.
	ExecRequest = boxapi.ExecRequest
	// Exec is the persisted record of a command run in a box.
	Exec = boxapi.Exec
	// ExecStatus is an exec's state (ExecRunning, …).
	ExecStatus = boxapi.ExecStatus
	// ExecEvent is one output or exit event of an exec.
	ExecEvent = boxapi.ExecEvent
	// EventKind tells output events (KindLog) from the exit event (KindExit).
	EventKind = boxapi.EventKind
	// ExitInfo is the payload of an exit event.
	ExitInfo = boxapi.ExitInfo
	// RunRequest describes a one-shot command in a throwaway box (Run).
	RunRequest = boxapi.RunRequest
	// RunResult is the outcome of Run.
	RunResult = boxapi.RunResult
	// AttachRequest describes an interactive terminal session (Attach).
	AttachRequest = boxapi.AttachRequest
	// TermSize is a terminal size in rows and columns.
	TermSize = boxapi.TermSize
)

// Exec statuses and event kinds.
const (
	ExecRunning   = boxapi.ExecRunning
	ExecSucceeded = boxapi.ExecSucceeded
	ExecFailed    = boxapi.ExecFailed
	ExecCanceled  = boxapi.ExecCanceled

	KindLog  = boxapi.KindLog
	KindExit = boxapi.KindExit
)

// Events.
type (
	// Event is one Manager event.
	Event = boxapi.Event
	// EventType names a Manager event.
	EventType = boxapi.EventType
	// EventFilter selects events for Subscribe.
	EventFilter = boxapi.EventFilter
	// Subscription is a stream of events; the caller must Close it.
	Subscription = boxapi.Subscription
)

// Manager event types.
const (
	EventBoxCreated  = boxapi.EventBoxCreated
	EventBoxStarted  = boxapi.EventBoxStarted
	EventBoxStopped  = boxapi.EventBoxStopped
	EventBoxRemoved  = boxapi.EventBoxRemoved
	EventBoxError    = boxapi.EventBoxError
	EventExecStarted = boxapi.EventExecStarted
	EventExecOutput  = boxapi.EventExecOutput
	EventExecExited  = boxapi.EventExecExited
	EventImagePull   = boxapi.EventImagePull
	EventBoxExpired  = boxapi.EventBoxExpired
)

// Images.
type (
	// ImageInfo describes a cached image.
	ImageInfo = boxapi.ImageInfo
	// PullProgress reports the progress of one layer of an image pull.
	PullProgress = boxapi.PullProgress
)

// Resource samples (Manager.Stats, StatsStream).
type (
	// Stats is one resource sample of a box.
	Stats = boxapi.Stats
	// StatsOptions tunes StatsStream.
	StatsOptions = boxapi.StatsOptions
)

// Sampling intervals of StatsStream.
const (
	DefaultStatsInterval = boxapi.DefaultStatsInterval
	MinStatsInterval     = boxapi.MinStatsInterval
)

// File watches (Manager.Watch).
type (
	// FileEvent is one event of a file watch.
	FileEvent = boxapi.FileEvent
	// FileEventType names a change a FileEvent reports.
	FileEventType = boxapi.FileEventType
	// WatchOptions tunes Watch.
	WatchOptions = boxapi.WatchOptions
)

// File event types and watch limits.
const (
	FileWatchReady   = boxapi.FileWatchReady
	FileCreated      = boxapi.FileCreated
	FileModified     = boxapi.FileModified
	FileRemoved      = boxapi.FileRemoved
	FileRenamed      = boxapi.FileRenamed
	FileOverflow     = boxapi.FileOverflow
	WatchLinger      = boxapi.WatchLinger
	WatchBacklog     = boxapi.WatchBacklog
	MaxWatchesPerBox = boxapi.MaxWatchesPerBox
)

// Service is everything a BoxRun user can do, locally (*Manager) or remotely
// (*client.Client).
type Service = boxapi.Service

// Errors.
type (
	// Error is an error with an API code; Message is what clients see.
	Error = boxapi.Error
	// Code is a stable error code of the BoxRun API.
	Code = boxapi.Code
)

// The API's error codes.
const (
	CodeBoxNotFound         = boxapi.CodeBoxNotFound
	CodeExecNotFound        = boxapi.CodeExecNotFound
	CodeBoxAlreadyRunning   = boxapi.CodeBoxAlreadyRunning
	CodeNameAlreadyExists   = boxapi.CodeNameAlreadyExists
	CodeResourceExceeded    = boxapi.CodeResourceExceeded
	CodeBoxNotRunning       = boxapi.CodeBoxNotRunning
	CodeExecAlreadyFinished = boxapi.CodeExecAlreadyFinished
	CodeRuntimeError        = boxapi.CodeRuntimeError
	CodeImagePullFailed     = boxapi.CodeImagePullFailed
	CodeTimeout             = boxapi.CodeTimeout
	CodeCanceled            = boxapi.CodeCanceled
	CodeValidationError     = boxapi.CodeValidationError
	CodeFileNotFound        = boxapi.CodeFileNotFound
	CodeSnapshotNotFound    = boxapi.CodeSnapshotNotFound
	CodeBoxBusy             = boxapi.CodeBoxBusy
)

// Error kinds: match them with errors.Is. They are boxapi's sentinels, so a
// match works the same for local and remote errors.
var (
	ErrNotFound         = boxapi.ErrNotFound
	ErrAlreadyExists    = boxapi.ErrAlreadyExists
	ErrInvalid          = boxapi.ErrInvalid
	ErrConflict         = boxapi.ErrConflict
	ErrResourceExceeded = boxapi.ErrResourceExceeded
	ErrImagePull        = boxapi.ErrImagePull
	ErrTimeout          = boxapi.ErrTimeout
	ErrCanceled         = boxapi.ErrCanceled
	ErrRuntime          = boxapi.ErrRuntime
	ErrClosed           = boxapi.ErrClosed
	// ErrSnapshotCorrupt: see boxapi.ErrSnapshotCorrupt.
	ErrSnapshotCorrupt = boxapi.ErrSnapshotCorrupt
)

// ErrorCode returns the API code of err (CodeRuntimeError for an error
// without one). See boxapi.ErrorCode.
func ErrorCode(err error) Code { return boxapi.ErrorCode(err) }

// ErrorMessage returns the message clients see for err. See
// boxapi.ErrorMessage.
func ErrorMessage(err error) string { return boxapi.ErrorMessage(err) }

// Errorf returns an *Error with code c and a formatted message; a %w verb
// sets its cause.
func Errorf(c Code, format string, args ...any) *Error { return boxapi.Errorf(c, format, args...) }

// FormatTime formats t the way the BoxRun API does (see boxapi.FormatTime).
func FormatTime(t time.Time) string { return boxapi.FormatTime(t) }

// ParseTime parses a timestamp in the API's format.
func ParseTime(s string) (time.Time, error) { return boxapi.ParseTime(s) }

// Box lifetime (BoxSpec.TTL, IdleTimeout, OnExpire; Manager.Lifetime).
type (
	// ExpireAction is what happens to a box when its ttl or idle timeout fires.
	ExpireAction = boxapi.ExpireAction
	// Lifetime is the lifetime state of a box.
	Lifetime = boxapi.Lifetime
)

// Expire actions.
const (
	ExpireStop   = boxapi.ExpireStop
	ExpireRemove = boxapi.ExpireRemove
	// ExpireHibernate hibernates the box instead of stopping it.
	ExpireHibernate = boxapi.ExpireHibernate
)

// Snapshots (Manager.Checkpoint, Restore, Fork; issue 14).
type (
	// Snapshot is a saved box, memory and files.
	Snapshot = boxapi.Snapshot
	// CheckpointOptions tune Checkpoint.
	CheckpointOptions = boxapi.CheckpointOptions
	// RestoreSpec describes the box Restore makes.
	RestoreSpec = boxapi.RestoreSpec
	// Snapshotter is the snapshot part of a service (Manager, client).
	Snapshotter = boxapi.Snapshotter
)

// MaxFork is the largest count Fork accepts.
const MaxFork = boxapi.MaxFork

// TruncationMarker is the text of the stderr event stored when an exec
// reaches its output limit (see boxapi.TruncationMarker).
func TruncationMarker(limit int64) string { return boxapi.TruncationMarker(limit) }
