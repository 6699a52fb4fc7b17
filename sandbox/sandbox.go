// Package sandbox is the driver SPI of BoxRun: the interface an isolation
// backend (driver/gvisor, driver/qemu, the fake in boxruntest) implements, and
// the image store interface the Manager uses to turn references into root
// filesystems. It depends on the standard library and boxapi only.
//
// Only the Manager calls these interfaces; library users never need them
// except to pass a driver or image store to boxrun.Open as an option.
package sandbox

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/boxrun/boxrun/boxapi"
)

// Driver runs sandboxes: the isolation backend of a Manager. Implementations
// live in driver/<name> (gvisor, qemu) and in boxruntest (a fake for tests);
// the boxrun package never imports one. Only the Manager calls a Driver, and it
// never holds a database connection across a call. Every implementation must
// pass boxruntest.TestDriver.
//
// Methods may be called concurrently for different handles, and Exec, CopyIn
// and CopyOut concurrently for the same handle.
type Driver interface {
	// Name is the driver's short name ("gvisor", "qemu", "fake").
	Name() string

	// Create makes the sandbox of a box and starts it. On success the
	// sandbox is running and handle identifies it from now on, also across
	// process restarts. On failure Create leaves nothing behind.
	Create(ctx context.Context, spec Spec) (handle string, err error)

	// Start starts a stopped sandbox again, with the files it had when it
	// was stopped. Starting a running sandbox is an error.
	Start(ctx context.Context, handle string) error

	// Stop stops a sandbox and every process in it, keeping its files.
	// Stopping a stopped sandbox is not an error.
	Stop(ctx context.Context, handle string) error

	// Remove destroys a sandbox, running or not, and everything it owns on
	// the host: processes, mounts, state and files. Removing an unknown
	// handle is not an error.
	Remove(ctx context.Context, handle string) error

	// State reports whether a sandbox is running, stopped or missing.
	State(ctx context.Context, handle string) (State, error)

	// Exec starts a process in a running sandbox. It returns once the
	// process has started; a command that cannot be started (missing
	// program, bad working directory) is an error here, not an exit code.
	Exec(ctx context.Context, handle string, spec ProcessSpec) (Process, error)

	// CopyIn extracts the tar stream r into the directory dst inside the
	// sandbox, creating dst if needed. Entries must stay inside dst: an
	// entry with "..", an absolute name, or a path through a symlink that
	// leads out of dst is rejected with an error wrapping ErrInvalid.
	CopyIn(ctx context.Context, handle, dst string, r io.Reader) error

	// CopyOut writes to w a tar stream of src (a file or a directory) inside
	// the sandbox. Entry names start with the base name of src. A missing
	// src is an error wrapping ErrNotFound.
	CopyOut(ctx context.Context, handle, src string, w io.Writer) error

	// Prune removes every sandbox this driver owns whose handle is not in
	// keep, with all of its host resources. The Manager calls it from Open
	// to clean up after a crash.
	Prune(ctx context.Context, keep []string) error

	// Close releases the driver's own resources. Running sandboxes keep
	// running. Close is idempotent.
	Close() error
}

// State is what a Driver reports about a sandbox.
type State string

// Sandbox states.
const (
	Running State = "running"
	Stopped State = "stopped"
	Missing State = "missing"
)

// Spec is what a Driver needs to create a sandbox.
type Spec struct {
	BoxID      string          // the box's ID, for names and logs
	Image      *Image          // the image; nil when the Manager has no ImageStore
	CPU        int64           // vCPUs (a limit where the host allows it)
	MemoryMB   int64           // memory limit in MiB (where the host allows it)
	DiskSizeGB int64           // disk size in GiB (advisory where not enforceable)
	Network    bool            // false: loopback only
	Workdir    string          // absolute; the driver creates it if the image lacks it
	Env        []string        // KEY=VALUE: image env overridden by box env, in that order
	Volumes    []boxapi.Volume // host directories to mount
	// Ports are published on the host (Network only; drivers that do not
	// implement NetworkDriver reject them).
	Ports []boxapi.PortMapping
	// Egress is the egress policy (Network only); nil is the zero policy.
	Egress *boxapi.EgressPolicy
	// User is the image's default user for processes ("", "name",
	// "uid", "uid:gid" or "name:group"; names resolve through the image's
	// /etc/passwd and /etc/group). "" means root.
	User string
}

// ProcessSpec describes a process to start in a sandbox.
type ProcessSpec struct {
	Cmd  []string        // program and arguments; the program is looked up in PATH
	Env  []string        // KEY=VALUE added over the sandbox env
	Dir  string          // absolute working directory
	TTY  bool            // run on a pseudo-terminal; Stderr is then unused
	Size boxapi.TermSize // initial terminal size when TTY (0 means 24x80)

	// Stdin is copied to the process's standard input, which is closed at
	// EOF. nil means the process reads EOF at once. With TTY, EOF of Stdin
	// is delivered as the terminal's EOF character (^D).
	Stdin io.Reader
	// Stdout and Stderr receive the output; nil discards it. The driver
	// calls each from one goroutine at a time, and never after Wait returns.
	Stdout, Stderr io.Writer
}

// Process is a process started by Driver.Exec.
type Process interface {
	// Wait blocks until the process exits and its output has been written,
	// and returns its exit code (128+n when killed by signal n). A non-zero
	// exit is not an error; err means the status is unknown (for example the
	// sandbox died). Output still held open by a background child of the
	// process does not keep Wait waiting. Wait may be called more than once.
	Wait() (exitCode int, err error)

	// Signal sends sig to the process and every process in its group.
	Signal(ctx context.Context, sig syscall.Signal) error

	// Resize sets the terminal size of a TTY process.
	Resize(ctx context.Context, size boxapi.TermSize) error
}

// Image is an image ready for a sandbox: an unpacked, read-only root
// filesystem shared by every box of that image, and its config.
type Image struct {
	Ref    string // the reference as given
	Digest string // the manifest digest ("sha256:…"), "" for a plain directory
	// Remote is the digest a registry gave for Ref (an index or manifest
	// digest): what a node pulling Ref from that registry gets. "" for an
	// image loaded, built or read locally, whose Digest no registry knows
	// (a docker-archive's is its config digest).
	Remote string
	Rootfs string      // absolute path of the unpacked rootfs; drivers must not modify it
	Config ImageConfig // defaults from the image
	// Endpoint is what served a registry pull that fetched something: a
	// mirror's URL or the registry host; "" when the cache or a local
	// source did.
	Endpoint string
}

// ImageConfig holds the defaults an image gives its boxes and execs.
type ImageConfig struct {
	Env        []string // KEY=VALUE
	WorkingDir string
	Entrypoint []string
	Cmd        []string
	User       string
}

// ImageStore turns image references into root filesystems. image.Store is
// the implementation; a Manager without one passes a nil Image to the driver.
type ImageStore interface {
	// Pull resolves ref and makes its rootfs ready, fetching and unpacking
	// only what is not cached. progress, when non-nil, is called from
	// Pull's goroutines as layers advance. Errors wrap ErrImagePull.
	Pull(ctx context.Context, ref string, progress func(boxapi.PullProgress)) (*Image, error)
	// List returns the cached images.
	List(ctx context.Context) ([]boxapi.ImageInfo, error)
	// Remove forgets ref; its blobs go at the next Prune.
	Remove(ctx context.Context, ref string) error
	// Prune deletes cached images, layers and blobs not reachable from the
	// images in keep (by digest or ref) and returns how many images went.
	Prune(ctx context.Context, keep []string) (int, error)
}

// PolicyPuller is implemented by ImageStores that take a pull policy per
// pull ("always", "missing" or "never"; see boxapi.BoxSpec.Pull), as image.Store
// does. The Manager uses it for Create; without it, Pull's own policy
// applies.
type PolicyPuller interface {
	PullWithPolicy(ctx context.Context, ref, policy string, progress func(boxapi.PullProgress)) (*Image, error)
}

// ImageArchiver is implemented by ImageStores that load, tag and save
// image archives, as image.Store does (see its Load, Tag and Save). The
// Manager's LoadImages, TagImage and SaveImages need it.
type ImageArchiver interface {
	// LoadArchive imports the images of a docker-archive or OCI-layout
	// tarball read from r (size bytes if known, else 0), naming them by
	// the archive's tags and by tags. It returns one boxapi.ImageInfo per name.
	LoadArchive(ctx context.Context, r io.Reader, tags []string, size int64, progress func(boxapi.PullProgress)) ([]boxapi.ImageInfo, error)
	// Tag gives the cached image src names the name dst.
	Tag(ctx context.Context, src, dst string) (*boxapi.ImageInfo, error)
	// Save writes the cached images refs name to w as a docker-archive.
	Save(ctx context.Context, w io.Writer, refs []string) error
}

// Describer is implemented by drivers that can say more about how they run
// boxes (the accelerator, the platform, which limits are enforced). The
// Manager logs it at Open and reports it through DriverInfo.
type Describer interface {
	Describe() map[string]string
}

// BoxDescriber is implemented by drivers that can say how they run one
// box right now (for gVisor: whether its in-box agent answers). The
// Manager reports it through BoxRuntime. DescribeBox returns nil for a
// handle that is not running; it must not change the box.
type BoxDescriber interface {
	DescribeBox(ctx context.Context, handle string) map[string]string
}

// OneShotter is implemented by drivers that can run a single command as
// the first process of a new sandbox, with no init and no agent: the fast
// path of an ephemeral run. The sandbox has the isolation, limits, files
// and network of one made by Create with the same spec. OneShot returns
// once the command was handed to the sandbox; Wait then returns its exit
// code, or an error when the command could not start (wrapping ErrInvalid)
// or the sandbox failed. Signal signals the command (SIGKILL ends the
// sandbox). Once Wait has returned the sandbox is stopped; the caller
// removes it with Remove(handle) as any other. A driver that cannot run
// this spec one-shot (for example rootless, or with stdin or a terminal)
// returns an error wrapping ErrNoOneShot before making anything, and the
// caller uses Create and Exec instead.
type OneShotter interface {
	// CanOneShot reports whether OneShot works on this driver as
	// configured; when false, callers use Create and Exec.
	CanOneShot() bool
	OneShot(ctx context.Context, spec Spec, proc ProcessSpec) (handle string, p Process, err error)
}

// StartNotifier is implemented by a Process whose command starts after
// the process was handed out (a OneShotter's, while its sandbox boots).
// Started is closed once the command runs (or will never run); callers
// count a timeout from then.
type StartNotifier interface {
	Started() <-chan struct{}
}

// ErrNoOneShot is wrapped by OneShotter.OneShot when the driver cannot run
// the given spec one-shot.
var ErrNoOneShot = errors.New("sandbox: one-shot not supported for this spec")
