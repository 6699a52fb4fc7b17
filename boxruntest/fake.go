package boxruntest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
)

// FakeDriver is a sandbox.Driver for fast tests. IT PROVIDES NO ISOLATION AT
// ALL: commands run as ordinary host processes, as the test's user, with the
// host's binaries (sh, cat, ...) and the host's view of every absolute path.
// Use it in tests only, never with untrusted commands.
//
// A box is a directory, <dir>/boxes/<handle>/fs, standing in for the box's
// file system:
//   - ProcessSpec.Dir "/x/y" runs the process in <fs>/x/y, created if
//     missing (real drivers fail instead); so relative paths in commands
//     land in the box, absolute ones on the host, and pwd prints the host
//     path. An empty Dir means the sandbox workdir. Create makes <fs>/tmp
//     and the workdir.
//   - CopyIn and CopyOut map absolute box paths into <fs> and are confined
//     to it with internal/tarutil (symlinks leading out are rejected).
//   - The image's rootfs is not used (the host's binaries run instead);
//     Volumes become symlinks <fs>/<GuestPath> -> HostPath (Readonly is not
//     enforced); CPU, memory, disk and network settings are ignored.
//   - SandboxSpec.User is validated like the real drivers do (names must
//     be in the image's /etc/passwd and /etc/group; with no image only
//     numeric IDs resolve) but processes keep running as the test's user
//     and HOME stays the host's: the box directory lives in a test
//     temporary directory that other users cannot enter.
//   - The environment is the host's, then SandboxSpec.Env, then
//     ProcessSpec.Env; PATH always stays the host's, so programs are found.
//   - Each process gets its own process group (its own session with TTY),
//     which Signal kills. A TTY process sees EOF on Stdin as the terminal's
//     EOF character (^D), since a terminal cannot be half-closed. Every process also gets BOXRUNTEST_FAKE_BOX=<handle>
//     in its environment: Stop and Remove kill every host process carrying
//     it (found in /proc), so background children die with their box unless
//     they clear their environment.
//
// Box state ("running"/"stopped") and spec are files in the box directory,
// so a new FakeDriver over the same dir sees the same boxes (their processes
// are not adopted). Prune deletes every box under <dir>/boxes ("fake-*"
// handles) that it is not told to keep. Copies work on stopped boxes too.
//
// Errors: an unknown handle wraps boxrun.ErrNotFound (Remove and State
// report it as the contract says), Exec in a stopped box and Start
// of a running one wrap boxrun.ErrConflict, bad arguments wrap
// boxrun.ErrInvalid.
//
// All methods are safe for concurrent use. The zero value is not usable; use
// NewFakeDriver.
type FakeDriver struct {
	dir string

	mu    sync.Mutex
	boxes map[string]*fakeBox // handle → in-memory state (processes)
}

var _ sandbox.Driver = (*FakeDriver)(nil)

// NewFakeDriver returns a FakeDriver keeping its boxes under dir (created on
// first use; typically t.TempDir()). It does no I/O.
func NewFakeDriver(dir string) *FakeDriver {
	return &FakeDriver{dir: dir, boxes: map[string]*fakeBox{}}
}

// fakeBox is the in-memory side of one box. mu serializes state changes
// against Exec, so a process is either refused or registered before Stop or
// Remove looks at the process set.
type fakeBox struct {
	mu    sync.Mutex
	procs map[*fakeProcess]struct{}
}

// fakeSpec is what the fake keeps of a SandboxSpec, in <box>/spec.json.
type fakeSpec struct {
	BoxID   string   `json:"box_id"`
	Workdir string   `json:"workdir"`
	Env     []string `json:"env"`
}

// Name returns "fake".
func (d *FakeDriver) Name() string { return "fake" }

func (d *FakeDriver) boxDir(handle string) string { return filepath.Join(d.dir, "boxes", handle) }
func (d *FakeDriver) fsDir(handle string) string  { return filepath.Join(d.boxDir(handle), "fs") }

// validHandle reports whether handle could be one of ours (and is safe to
// join to a path).
func validHandle(handle string) bool {
	return strings.HasPrefix(handle, "fake-") && !strings.ContainsAny(handle, "/\\") && handle != "." && handle != ".."
}

// box returns the in-memory state of handle, creating it for boxes made by
// an earlier FakeDriver over the same dir.
func (d *FakeDriver) box(handle string) *fakeBox {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.boxes[handle]
	if b == nil {
		b = &fakeBox{procs: map[*fakeProcess]struct{}{}}
		d.boxes[handle] = b
	}
	return b
}

// readState returns the state of handle from disk. The caller holds the
// box's lock.
func (d *FakeDriver) readState(handle string) (sandbox.State, error) {
	if !validHandle(handle) {
		return sandbox.Missing, nil
	}
	b, err := os.ReadFile(filepath.Join(d.boxDir(handle), "state"))
	if errors.Is(err, fs.ErrNotExist) {
		return sandbox.Missing, nil
	}
	if err != nil {
		return "", fmt.Errorf("fake: state of %s: %w", handle, err)
	}
	return sandbox.State(strings.TrimSpace(string(b))), nil
}

func (d *FakeDriver) writeState(handle string, s sandbox.State) error {
	if err := os.WriteFile(filepath.Join(d.boxDir(handle), "state"), []byte(s+"\n"), 0o644); err != nil {
		return fmt.Errorf("fake: set state of %s: %w", handle, err)
	}
	return nil
}

// Create makes the box directory and marks the box running.
func (d *FakeDriver) Create(ctx context.Context, spec sandbox.Spec) (handle string, err error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("fake: create: %w", err)
	}
	handle = "fake-" + hex.EncodeToString(id[:])
	dir := d.boxDir(handle)
	defer func() {
		if err != nil {
			_ = removeAll(dir)
		}
	}()
	workdir := spec.Workdir
	if workdir == "" {
		workdir = boxrun.DefaultWorkdir
	}
	if !path.IsAbs(workdir) {
		return "", fmt.Errorf("fake: create: workdir %q is not absolute: %w", workdir, boxrun.ErrInvalid)
	}
	var rootfs string
	if spec.Image != nil {
		rootfs = spec.Image.Rootfs
	}
	if _, err := userdb.Resolve(rootfs, spec.User); err != nil {
		if errors.Is(err, userdb.ErrUnknown) || errors.Is(err, userdb.ErrSyntax) {
			err = fmt.Errorf("%w: %w", err, boxrun.ErrInvalid)
		}
		return "", fmt.Errorf("fake: create: user %q: %w", spec.User, err)
	}
	fsDir := d.fsDir(handle)
	for _, p := range []string{fsDir, filepath.Join(fsDir, "tmp"), filepath.Join(fsDir, workdir)} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("fake: create: %w", err)
		}
	}
	for _, v := range spec.Volumes {
		if !path.IsAbs(v.GuestPath) || !filepath.IsAbs(v.HostPath) {
			return "", fmt.Errorf("fake: create: volume %s:%s: paths must be absolute: %w", v.HostPath, v.GuestPath, boxrun.ErrInvalid)
		}
		guest := filepath.Join(fsDir, path.Clean(v.GuestPath))
		if err := os.MkdirAll(filepath.Dir(guest), 0o755); err != nil {
			return "", fmt.Errorf("fake: create: %w", err)
		}
		if err := os.Symlink(v.HostPath, guest); err != nil {
			return "", fmt.Errorf("fake: create: volume: %w", err)
		}
	}
	js, err := json.Marshal(fakeSpec{BoxID: spec.BoxID, Workdir: workdir, Env: spec.Env})
	if err != nil {
		return "", fmt.Errorf("fake: create: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), js, 0o644); err != nil {
		return "", fmt.Errorf("fake: create: %w", err)
	}
	if err := d.writeState(handle, sandbox.Running); err != nil {
		return "", err
	}
	return handle, nil
}

// Start marks a stopped box running again.
func (d *FakeDriver) Start(ctx context.Context, handle string) error {
	b := d.box(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := d.readState(handle)
	if err != nil {
		return err
	}
	switch st {
	case sandbox.Missing:
		return fmt.Errorf("fake: start %s: %w", handle, boxrun.ErrNotFound)
	case sandbox.Running:
		return fmt.Errorf("fake: start %s: already running: %w", handle, boxrun.ErrConflict)
	}
	return d.writeState(handle, sandbox.Running)
}

// Stop kills every process of the box, waits for them, and marks it stopped.
func (d *FakeDriver) Stop(ctx context.Context, handle string) error {
	b := d.box(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := d.readState(handle)
	if err != nil {
		return err
	}
	if st == sandbox.Missing {
		return fmt.Errorf("fake: stop %s: %w", handle, boxrun.ErrNotFound)
	}
	if err := b.killAll(ctx, handle); err != nil {
		return fmt.Errorf("fake: stop %s: %w", handle, err)
	}
	return d.writeState(handle, sandbox.Stopped)
}

// Remove kills the box's processes and deletes its directory.
func (d *FakeDriver) Remove(ctx context.Context, handle string) error {
	if !validHandle(handle) {
		return nil
	}
	b := d.box(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.killAll(ctx, handle); err != nil {
		return fmt.Errorf("fake: remove %s: %w", handle, err)
	}
	if err := removeAll(d.boxDir(handle)); err != nil {
		return fmt.Errorf("fake: remove %s: %w", handle, err)
	}
	d.mu.Lock()
	delete(d.boxes, handle)
	d.mu.Unlock()
	return nil
}

// State reads the box's state from its directory.
func (d *FakeDriver) State(ctx context.Context, handle string) (sandbox.State, error) {
	b := d.box(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	return d.readState(handle)
}

// Prune removes every box under dir whose handle is not in keep.
func (d *FakeDriver) Prune(ctx context.Context, keep []string) error {
	entries, err := os.ReadDir(filepath.Join(d.dir, "boxes"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fake: prune: %w", err)
	}
	kept := map[string]bool{}
	for _, h := range keep {
		kept[h] = true
	}
	var errs []error
	for _, e := range entries {
		if kept[e.Name()] {
			continue
		}
		if err := d.Remove(ctx, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close does nothing: the boxes and their processes keep running. It is
// idempotent.
func (d *FakeDriver) Close() error { return nil }

// killAll kills the process group of every process of b, then every other
// host process carrying the box's marker in its environment (background
// children that outlived their parent or left its group), and waits for
// b's processes to be reaped (bounded by ctx). The caller holds b.mu.
func (b *fakeBox) killAll(ctx context.Context, handle string) error {
	for p := range b.procs {
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	}
	killMarked(markerEnv + "=" + handle)
	for p := range b.procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		delete(b.procs, p)
	}
	return nil
}

// markerEnv is the environment variable naming a process's box. The fake
// finds a box's stray processes by it in /proc/<pid>/environ, which, unlike
// process groups, does not risk hitting an unrelated process after PID reuse.
const markerEnv = "BOXRUNTEST_FAKE_BOX"

// killMarked sends SIGKILL to every process whose initial environment holds
// the entry marker, scanning /proc again while it finds some (they may fork).
func killMarked(marker string) {
	entry := []byte("\x00" + marker + "\x00")
	self := os.Getpid()
	for range 10 {
		dirs, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		found := false
		for _, e := range dirs {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err != nil || !bytes.Contains(append([]byte{0}, env...), entry) {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			found = true
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeAll is os.RemoveAll that also copes with directories left without
// write permission (a box may chmod its files).
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
