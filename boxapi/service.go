package boxapi

import (
	"context"
	"io"
	"time"
)

// Service is everything a BoxRun user can do, locally or remotely. *Manager
// (in process) and *client.Client (over the HTTP API) both implement it, and
// the same behaviour tests run against both. Box arguments accept an ID or a
// name.
type Service interface {
	// Info reports the resource limits.
	Info(ctx context.Context) (Info, error)

	// Create creates a box and starts it; it returns once the box runs.
	Create(ctx context.Context, spec BoxSpec) (*Box, error)
	// Get returns a box by ID or name.
	Get(ctx context.Context, box string) (*Box, error)
	// List returns boxes, newest first.
	List(ctx context.Context, filter BoxFilter) ([]*Box, error)
	// Stop stops a running box, keeping its files.
	Stop(ctx context.Context, box string) (*Box, error)
	// Start starts a stopped box again.
	Start(ctx context.Context, box string) (*Box, error)
	// Remove removes a box and its execs; a running box needs force.
	Remove(ctx context.Context, box string, force bool) error
	// GC removes stopped boxes stopped before, and error boxes created
	// before, now minus olderThan. It returns how many went.
	GC(ctx context.Context, olderThan time.Duration) (int, error)

	// StartExec starts a command and returns its record at once; output is
	// persisted as events (see ExecEvents).
	StartExec(ctx context.Context, box string, req ExecRequest) (*Exec, error)
	// Exec runs a command to completion, writing its output to stdout and
	// stderr (either may be nil) as it arrives, and returns the finished
	// record. A non-zero exit is not an error. Canceling ctx cancels the exec.
	Exec(ctx context.Context, box string, req ExecRequest, stdout, stderr io.Writer) (*Exec, error)
	// GetExec returns an exec by ID.
	GetExec(ctx context.Context, execID string) (*Exec, error)
	// ListExecs returns the execs of a box, newest first.
	ListExecs(ctx context.Context, box string) ([]*Exec, error)
	// WaitExec waits until an exec has finished and returns its record.
	WaitExec(ctx context.Context, execID string) (*Exec, error)
	// CancelExec kills a running exec; its status becomes canceled.
	CancelExec(ctx context.Context, execID string) (*Exec, error)
	// ExecEvents calls fn with every output event of an exec whose Seq is
	// greater than afterSeq (-1 for all), in order, each once: first those
	// already stored, then live ones. It returns nil after the exit event,
	// or the first error from fn or ctx.
	ExecEvents(ctx context.Context, execID string, afterSeq int64, fn func(ExecEvent) error) error

	// CopyIn extracts a tar stream into directory dst in a running box.
	CopyIn(ctx context.Context, box, dst string, tar io.Reader) error
	// CopyOut writes a tar stream of src (file or directory) in a running box.
	CopyOut(ctx context.Context, box, src string, tar io.Writer) error
	// UploadFile writes r to the file dest (absolute, with a file name) in
	// a running box, creating parent directories.
	UploadFile(ctx context.Context, box, dest string, r io.Reader) error
	// DownloadFile writes the regular file at path in a running box to w.
	DownloadFile(ctx context.Context, box, path string, w io.Writer) error

	// Run creates a box, runs one command in it, collects its output and
	// removes the box, whatever happens.
	Run(ctx context.Context, req RunRequest) (*RunResult, error)
	// Attach runs an interactive program on a terminal in a running box
	// until it exits, and returns its exit code. Canceling ctx kills the
	// program and returns ctx.Err(). The session is not recorded as an exec.
	Attach(ctx context.Context, box string, req AttachRequest) (int, error)

	// Lifetime reports a box's ttl and idle timeout and when they fire.
	Lifetime(ctx context.Context, box string) (*Lifetime, error)

	// Stats samples the resource use of a running box.
	Stats(ctx context.Context, box string) (*Stats, error)
	// StatsStream calls fn with a sample of a running box every
	// opts.Interval until the box stops (nil), ctx ends or fn fails.
	StatsStream(ctx context.Context, box string, opts StatsOptions, fn func(*Stats) error) error

	// Watch calls fn with the events of a file watch on path (a file or a
	// directory) inside a running box: FileWatchReady first, then each
	// change in order, until the box stops or the path is removed (nil),
	// ctx ends, or fn fails (its error).
	Watch(ctx context.Context, box, path string, opts WatchOptions, fn func(FileEvent) error) error

	// Subscribe streams Manager events (see EventFilter). The caller must
	// Close the subscription.
	Subscribe(ctx context.Context, filter EventFilter) (Subscription, error)

	// PullImage fetches an image into the cache ahead of time.
	PullImage(ctx context.Context, ref string) (*ImageInfo, error)
	// Images lists the cached images.
	Images(ctx context.Context) ([]ImageInfo, error)
	// RemoveImage removes an image from the cache.
	RemoveImage(ctx context.Context, ref string) error
	// PruneImages removes cached images no box uses and returns how many.
	PruneImages(ctx context.Context) (int, error)
	// LoadImages imports the images of a docker-archive or OCI-layout
	// tarball (an extension; see Manager.LoadImages).
	LoadImages(ctx context.Context, r io.Reader, opts LoadImagesOptions) ([]ImageInfo, error)
	// TagImage names a cached image (an extension; see Manager.TagImage).
	TagImage(ctx context.Context, src, dst string) (*ImageInfo, error)
	// SaveImages writes cached images to w as a docker-archive (an
	// extension; see Manager.SaveImages).
	SaveImages(ctx context.Context, w io.Writer, refs []string) error
}
