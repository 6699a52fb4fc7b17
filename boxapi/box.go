package boxapi

import (
	"fmt"
	"io"
	"time"
)

// BoxStatus is the lifecycle state of a box. The values are the wire strings
// of the BoxRun API.
type BoxStatus string

// Box statuses. A box is created in StatusCreating, becomes StatusRunning once
// its sandbox is up, StatusStopped after Stop (its files are kept), and
// StatusError when creation failed (its ErrorCode and ErrorMessage say why).
const (
	StatusCreating BoxStatus = "creating"
	StatusRunning  BoxStatus = "running"
	StatusStopped  BoxStatus = "stopped"
	StatusError    BoxStatus = "error"
)

// Volume mounts a host directory into a box.
type Volume struct {
	HostPath  string `json:"host_path"`  // absolute path on the host; must exist
	GuestPath string `json:"guest_path"` // absolute path inside the box
	Readonly  bool   `json:"readonly"`   // mount read-only inside the box
}

// Defaults applied by Create to zero fields of a BoxSpec.
const (
	DefaultCPU        = 2
	DefaultMemoryMB   = 1024
	DefaultDiskSizeGB = 8
	DefaultWorkdir    = "/root"
)

// BoxSpec describes a box to create. Zero numeric fields and an empty Workdir
// take the defaults above; negative values are rejected with ErrInvalid.
type BoxSpec struct {
	Image      string            // OCI image reference, passed to the ImageStore (required unless the driver needs none)
	Name       string            // optional unique name; "" means no name
	CPU        int64             // vCPUs, default DefaultCPU
	MemoryMB   int64             // memory in MiB, default DefaultMemoryMB
	DiskSizeGB int64             // disk size in GiB, default DefaultDiskSizeGB
	Network    bool              // give the box network access (default: loopback only)
	Workdir    string            // default working directory of execs, default DefaultWorkdir
	Env        map[string]string // environment of every exec in the box
	Volumes    []Volume          // host directories mounted into the box
	// Pull says when the image is pulled (an extension): PullMissing (the
	// default, for "") uses a cached image or a name given by LoadImages
	// or TagImage without contacting any registry; PullAlways asks the
	// registry whether the tag moved; PullNever fails at once with
	// IMAGE_PULL_FAILED when the image is not cached.
	Pull PullPolicy
	// Ports are published on the host, Docker-style (network only; an
	// extension: see NetInfo). A host port that is taken fails Create with
	// VALIDATION_ERROR and no box.
	Ports []PortMapping
	// Egress is the box's egress policy (network only); nil is the zero
	// policy: the internet yes, the host, link-local and other boxes no.
	Egress *EgressPolicy

	// TTL stops (or removes, per OnExpire) the box this long after each
	// start; 0 takes the Manager's default (WithDefaultLifetime), none by
	// default.
	TTL time.Duration
	// IdleTimeout stops (or removes) the box after this long without an
	// exec, attach session or copy (a running exec or session keeps it
	// busy); 0 takes the Manager's default, none by default.
	IdleTimeout time.Duration
	// OnExpire is what TTL and IdleTimeout do: ExpireStop ("", the
	// default) or ExpireRemove.
	OnExpire ExpireAction
}

// PullPolicy says when creating a box pulls its image.
type PullPolicy string

// Pull policies (see BoxSpec.Pull).
const (
	PullAlways  PullPolicy = "always"
	PullMissing PullPolicy = "missing"
	PullNever   PullPolicy = "never"
)

// Box is the persisted record of a box. Its JSON form is the BoxRun API's
// Box object: exactly 17 keys, nullable fields as null.
type Box struct {
	ID           string
	Name         string // "" when the box has no name (null on the wire)
	Status       BoxStatus
	Image        string
	CPU          int64
	MemoryMB     int64
	DiskSizeGB   int64
	Network      bool
	Workdir      string
	Env          map[string]string
	Volumes      []Volume
	Handle       string // the driver's ID for the sandbox (boxlite_id on the wire); "" until created
	ErrorCode    string
	ErrorMessage string
	CreatedAt    time.Time
	StartedAt    time.Time // zero when never started (null on the wire)
	StoppedAt    time.Time // zero unless stopped (null on the wire)
}

// BoxFilter selects boxes in List. The zero value selects every box.
type BoxFilter struct {
	Status BoxStatus // "" or "all" selects every status
}

// ExecStatus is the state of an exec. StatusRunning is the only non-terminal one.
type ExecStatus string

// Exec statuses.
const (
	ExecRunning   ExecStatus = "running"
	ExecSucceeded ExecStatus = "succeeded" // exit code 0 and no error
	ExecFailed    ExecStatus = "failed"    // non-zero exit code, timeout or runtime error
	ExecCanceled  ExecStatus = "canceled"  // canceled by CancelExec or box removal
)

// Exec is the persisted record of a command run in a box. Its JSON form is the
// BoxRun API's Exec object: exactly 11 keys.
type Exec struct {
	ID           string
	BoxID        string
	Status       ExecStatus
	Cmd          []string
	Env          map[string]string // exec-level env as requested (nil when none)
	Workdir      string            // as requested; "" means the box workdir was used (null on the wire)
	TimeoutMS    int64             // as requested; 0 means no timeout (null on the wire)
	ExitCode     *int              // nil while running and for canceled execs
	ErrorMessage string            // runtime error (timeout, restart, start failure); "" when none
	CreatedAt    time.Time
	FinishedAt   time.Time // zero while running
}

// ExecRequest describes a command to run in a box.
type ExecRequest struct {
	Cmd       []string          // program and arguments; required, no shell is implied
	Env       map[string]string // added to the box env for this command
	Workdir   string            // working directory; "" uses the box's workdir
	TimeoutMS int64             // kill the command after this many milliseconds; 0 means no timeout

	// OutputLimit bounds the output (stdout and stderr together, bytes)
	// stored for this exec: past it, a truncation marker event is stored
	// and the rest dropped; the process runs on. 0 means the server's
	// limit, which is also the most a request can ask for (extension
	// field output_limit).
	OutputLimit int64

	// Stdin, when set, is copied to the command's standard input, which is
	// closed when Stdin returns EOF. When nil the command reads EOF at once.
	Stdin io.Reader
}

// EventKind is the kind of an exec output event: "log" or "exit".
type EventKind string

// Exec output event kinds.
const (
	KindLog  EventKind = "log"
	KindExit EventKind = "exit"
)

// ExecEvent is one persisted output event of an exec: a chunk of stdout or
// stderr ("log"), or the final "exit" event. Seq starts at 0 for each exec and
// is shared by both streams; the exit event's Seq follows the last chunk.
type ExecEvent struct {
	ExecID string
	Seq    int64
	Kind   EventKind
	Stream string // "stdout" or "stderr" for log events; "" for exit
	// Data is, for a log event, the output's exact bytes (any bytes, not
	// necessarily valid UTF-8: the HTTP API sends it as text with U+FFFD
	// for invalid bytes, or as base64 with ?encoding=base64), and for the
	// exit event the JSON text {"exit_code":N[,"error":"..."]}.
	Data      string
	CreatedAt time.Time
}

// ExitInfo is the decoded payload of an exit event.
type ExitInfo struct {
	ExitCode *int   `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// TermSize is a terminal size in character cells.
type TermSize struct {
	Rows uint16
	Cols uint16
}

// Info reports the configured resource limits of a Manager.
type Info struct {
	MaxCPU      int64 `json:"max_cpu"`
	MaxMemoryMB int64 `json:"max_memory_mb"`
}

// RunResult is the outcome of an ephemeral Run.
type RunResult struct {
	ExitCode     *int    `json:"exit_code"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	ErrorMessage *string `json:"error_message"`
}

// RunRequest describes an ephemeral run: a box is created, the command runs,
// its output is collected and the box is removed.
type RunRequest struct {
	Image      string
	Cmd        []string
	CPU        int64
	MemoryMB   int64
	DiskSizeGB int64
	Network    bool
	Env        map[string]string // applied to the box and to the command
	Volumes    []Volume
	TimeoutMS  int64
	// OutputLimit bounds the output (stdout and stderr together, bytes)
	// collected and stored: past it, Stderr ends with a truncation marker
	// and the rest is dropped. 0 means DefaultRunOutputLimit (and never
	// more than the server's per-exec limit) (extension field
	// output_limit).
	OutputLimit int64
}

// DefaultRunOutputLimit is the output a Run collects unless its request
// asks for another limit: a Run's result is held in memory and sent in
// one response.
const DefaultRunOutputLimit = 16 << 20

// TruncationMarker is the text of the stderr log event stored when an exec
// reaches its output limit (limit in bytes); output after it is dropped.
func TruncationMarker(limit int64) string {
	return fmt.Sprintf("\n[boxrun: output truncated: this exec reached its limit of %d bytes]\n", limit)
}

// AttachRequest describes an interactive terminal session (see Manager.Attach).
type AttachRequest struct {
	Shell   string          // program to run when Cmd is empty; default "/bin/sh"
	Cmd     []string        // program and arguments; overrides Shell
	Workdir string          // working directory; "" uses the box's workdir
	Term    string          // TERM value; default "xterm-256color"
	Size    TermSize        // initial size; default 24x80
	Stdin   io.Reader       // terminal input; EOF ends the session
	Stdout  io.Writer       // terminal output (stdout and stderr merged by the TTY)
	Resize  <-chan TermSize // optional resize requests
}
