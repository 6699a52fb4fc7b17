package gvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
	"github.com/boxrun/boxrun/driver/gvisor/internal/rootfs"
	"github.com/boxrun/boxrun/driver/internal/boxnet"
	"github.com/boxrun/boxrun/internal/binpath"
	"github.com/boxrun/boxrun/internal/mountutil"
	"github.com/boxrun/boxrun/sandbox"
	"golang.org/x/sys/unix"
)

var _ sandbox.Driver = (*Driver)(nil)

// Driver runs boxes as gVisor sandboxes. Create it with New. Its methods are
// safe for concurrent use: lifecycle calls on one handle are serialized,
// Exec and the copies run concurrently.
type Driver struct {
	runscPath string
	initPath  string
	platform  string
	stopGrace time.Duration
	log       *slog.Logger
	limits    Limits
	// userns is the user namespace every runsc call runs in when the
	// driver is not root (nil as root): see rootless.go.
	userns *userNS
	// shift is how new boxes' IDs are stored on the host (nil: not
	// shifted; see layer.go).
	shift *rootfs.IDShift

	dir, runDir, boxesDir, emptyDir string

	mu     sync.Mutex
	locks  map[string]*sync.Mutex // per-handle lifecycle locks
	agents map[string]*agentBox   // per-handle agent connections (agent.go)
	rootMu sync.RWMutex           // R: runsc create; W: null-netns cleanup
	tmplMu sync.Mutex             // disk templates (layer.go)
	closed atomic.Bool
	// relayOutput makes agent execs relay their output in frames instead
	// of host-connected sockets (set by benchmarks, for the comparison).
	relayOutput atomic.Bool

	// net sets up box networks (nil when unavailable: netErr says why).
	net      *boxnet.Host
	netErr   error
	onDenied atomic.Pointer[func(sandbox.NetDenial)]

	stats statsCache // cached slow parts of Stats, per handle
}

// New checks the host and prepares cfg.Dir. It fails with an error wrapping
// ErrUnsupported when the host cannot run the driver: runsc or the in-box
// helper missing (the message says how to build them), or, when the process
// is not root, no unprivileged user namespaces. Not root, the driver runs
// rootless (see the package doc and Limits.Rootless).
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("gvisor: Config.Dir is required: %w", boxapi.ErrInvalid)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	runscPath, err := findBinary(cfg.Runsc, RunscEnv, dir, RunscName)
	if err != nil {
		return nil, fmt.Errorf("gvisor: %w; %s", err, buildRunscHint)
	}
	initPath, err := findInit(cfg.InitPath, dir)
	if errors.Is(err, binpath.ErrNotFound) {
		return nil, fmt.Errorf("gvisor: %w; %s", err, buildInitHint)
	} else if err != nil {
		return nil, fmt.Errorf("gvisor: %w", err)
	}
	d := &Driver{
		runscPath: runscPath,
		initPath:  initPath,
		platform:  cfg.Platform,
		stopGrace: cfg.StopGrace,
		log:       cfg.Logger,
		dir:       dir,
		runDir:    filepath.Join(dir, "run"),
		boxesDir:  filepath.Join(dir, "boxes"),
		emptyDir:  filepath.Join(dir, "empty"),
		locks:     map[string]*sync.Mutex{},
		agents:    map[string]*agentBox{},
	}
	if os.Geteuid() == 0 {
		d.limits = detectLimits()
		if cfg.IDBase >= 0 {
			base := cfg.IDBase
			if base == 0 {
				base = DefaultIDBase
			}
			if base > 1<<32-1-idRangeSize {
				return nil, fmt.Errorf("gvisor: Config.IDBase %d: the range of %d IDs does not fit below 2^32-1: %w", base, idRangeSize, boxapi.ErrInvalid)
			}
			d.shift = &rootfs.IDShift{Base: uint32(base), Size: idRangeSize}
		}
	} else {
		d.userns = &userNS{uid: os.Geteuid(), gid: os.Getegid()}
		d.limits = Limits{Rootless: true}
		if err := d.userns.probe(runscPath); err != nil {
			return nil, fmt.Errorf("gvisor: not root, and rootless mode is unavailable: %w: %w", err, ErrUnsupported)
		}
	}
	if d.platform == "" {
		d.platform = DefaultPlatform
	}
	if d.stopGrace <= 0 {
		d.stopGrace = DefaultStopGrace
	}
	if d.log == nil {
		d.log = discardLogger()
	}
	for _, p := range []string{d.runDir, d.boxesDir, d.emptyDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("gvisor: %w", err)
		}
	}
	if d.shift != nil {
		if err := probeShift(d.dir, *d.shift); err != nil {
			d.log.Warn("gvisor: no ID-mapped mounts on this host: box root creates files as host root", "err", err)
			d.shift = nil
		} else {
			d.limits.IDBase = d.shift.Base
			if err := rootfs.DiskTools(); err != nil {
				d.log.Warn("gvisor: disk sizes are not enforced", "err", err)
			} else {
				d.limits.Disk = true
			}
		}
	}
	d.newNet(cfg)
	if d.userns == nil {
		d.stopInterruptedCheckpoints(context.Background())
	}
	d.restoreNet(context.Background())
	d.log.Debug("gvisor driver ready", "runsc", runscPath, "init", initPath, "cgroups", d.limits.Cgroups,
		"cpu_limit", d.limits.CPU, "memory_limit", d.limits.Memory, "rootless", d.limits.Rootless,
		"id_base", d.limits.IDBase, "disk_limit", d.limits.Disk)
	return d, nil
}

// Name returns "gvisor".
func (d *Driver) Name() string { return "gvisor" }

// Limits reports which resource limits this host enforces.
func (d *Driver) Limits() Limits { return d.limits }

// Close marks the driver closed and closes its agent connections (the
// agents then kill the execs started through them). Sandboxes keep
// running; a new Driver on the same Dir picks them up. Close is idempotent.
func (d *Driver) Close() error {
	first := !d.closed.Swap(true)
	d.mu.Lock()
	var hs []string
	for h := range d.agents {
		hs = append(hs, h)
	}
	d.mu.Unlock()
	for _, h := range hs {
		d.closeAgent(h)
	}
	if first && d.net != nil {
		return d.net.Close()
	}
	return nil
}

func (d *Driver) checkOpen() error {
	if d.closed.Load() {
		return fmt.Errorf("gvisor: driver closed: %w", boxapi.ErrClosed)
	}
	return nil
}

// lock takes the lifecycle lock of h and returns its unlock.
func (d *Driver) lock(h string) func() {
	d.mu.Lock()
	l, ok := d.locks[h]
	if !ok {
		l = &sync.Mutex{}
		d.locks[h] = l
	}
	d.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func notFound(h string) error {
	return fmt.Errorf("gvisor: sandbox %q: %w", h, boxapi.ErrNotFound)
}

// exists reports whether the driver has a box dir for h.
func (d *Driver) exists(h string) bool {
	if !validHandle(h) {
		return false
	}
	_, err := os.Stat(d.metaPath(h))
	return err == nil
}

// State reports whether the sandbox of handle runs. A sandbox whose process
// died (or is a zombie) is stopped.
func (d *Driver) State(ctx context.Context, handle string) (sandbox.State, error) {
	if !d.exists(handle) {
		return sandbox.Missing, nil
	}
	if d.running(handle) {
		return sandbox.Running, nil
	}
	return sandbox.Stopped, nil
}

// Create makes the box's directories and overlay, then creates and starts
// its sandbox. On failure nothing is left behind.
func (d *Driver) Create(ctx context.Context, spec sandbox.Spec) (string, error) {
	h, m, unlock, err := d.prepare(ctx, spec)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := d.start(ctx, h, m); err != nil {
		if derr := d.destroy(ctx, h); derr != nil {
			d.log.Warn("gvisor: cleanup after failed create", "handle", h, "err", derr)
		}
		return "", err
	}
	d.log.Debug("gvisor: created", "handle", h, "box", spec.BoxID)
	return h, nil
}

// prepare checks spec and makes a new box's directories, writable layer
// and meta: everything but the sandbox. It returns with the box's
// lifecycle lock held (unlock releases it). On failure nothing is left.
func (d *Driver) prepare(ctx context.Context, spec sandbox.Spec) (h string, m *boxMeta, unlock func(), err error) {
	if err := d.checkOpen(); err != nil {
		return "", nil, nil, err
	}
	if err := validateSpec(spec); err != nil {
		return "", nil, nil, err
	}
	if err := d.checkVolumeOwners(spec.Volumes); err != nil {
		return "", nil, nil, err
	}
	h, err = newHandle()
	if err != nil {
		return "", nil, nil, fmt.Errorf("gvisor: %w", err)
	}
	// A local: a failing return sets the named result unlock to nil
	// before this deferred call runs.
	release := d.lock(h)
	defer func() {
		if err != nil {
			release()
		}
	}()
	m = &boxMeta{
		BoxID:    spec.BoxID,
		Lower:    d.emptyDir,
		CPU:      spec.CPU,
		MemoryMB: spec.MemoryMB,
		Network:  spec.Network,
		Workdir:  spec.Workdir,
		Env:      mergeEnv(spec.Env),
		Volumes:  spec.Volumes,
	}
	if err := d.netSpec(spec, m); err != nil {
		return "", nil, nil, err
	}
	if spec.Image != nil {
		st, err := os.Stat(spec.Image.Rootfs)
		if err != nil || !st.IsDir() {
			return "", nil, nil, fmt.Errorf("gvisor: image rootfs %q is not a directory: %w", spec.Image.Rootfs, boxapi.ErrInvalid)
		}
		m.Lower = filepath.Clean(spec.Image.Rootfs)
	}
	if m.User, err = resolveUser(m.Lower, spec.User); err != nil {
		return "", nil, nil, err
	}
	if m.Workdir == "" {
		m.Workdir = "/"
	}
	if d.shift != nil {
		s := *d.shift
		m.Shift = &s
		if d.limits.Disk {
			m.DiskGB = spec.DiskSizeGB
		}
	}
	bd := d.boxDir(h)
	for _, p := range []string{bd, d.rootfs(h), d.agentDir(h)} {
		if err := os.Mkdir(p, 0o700); err != nil {
			_ = d.destroy(ctx, h)
			return "", nil, nil, fmt.Errorf("gvisor: %w", err)
		}
	}
	if err := d.newLayer(ctx, h, m); err != nil {
		_ = d.destroy(context.WithoutCancel(ctx), h)
		return "", nil, nil, fmt.Errorf("gvisor: %w", err)
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileAtomic(d.metaPath(h), mb); err != nil {
		_ = d.destroy(ctx, h)
		return "", nil, nil, fmt.Errorf("gvisor: %w", err)
	}
	return h, m, release, nil
}

// start mounts the overlay, writes the bundle and runs runsc create + start.
// On failure the sandbox is deleted and the overlay unmounted; the box's
// files stay. Rootless, the mount and the preparation of the root happen
// in the sandbox's own namespaces instead (see rootless.go).
func (d *Driver) start(ctx context.Context, h string, m *boxMeta) (err error) {
	defer func() {
		if err != nil {
			d.teardown(context.WithoutCancel(ctx), h, m)
		}
	}()
	if err := d.mountAndNet(ctx, h, m); err != nil {
		return err
	}
	// The agent's directory (boxes made before the agent get it here).
	if err := os.Mkdir(d.agentDir(h), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("gvisor: %w", err)
	}
	_ = os.Remove(filepath.Join(d.agentDir(h), agentSockName))
	cb, _ := json.MarshalIndent(d.bundleConfig(h, m), "", "  ")
	if err := writeFileAtomic(filepath.Join(d.boxDir(h), "config.json"), cb); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	if err := d.create(ctx, h, m); err != nil {
		return err
	}
	d.waitAgent(ctx, h)
	return nil
}

// mountAndNet mounts the box's root (as root) and brings up its network:
// what the sandbox needs on the host before runsc runs it. The caller
// tears down on error.
func (d *Driver) mountAndNet(ctx context.Context, h string, m *boxMeta) error {
	if d.userns == nil {
		if err := d.mountRoot(ctx, h, m); err != nil {
			return fmt.Errorf("gvisor: %w", err)
		}
		if err := rootfs.Prepare(d.rootfs(h), m.Workdir); err != nil {
			return fmt.Errorf("gvisor: %w", err)
		}
	}
	if m.Network {
		if err := d.netUp(ctx, h, m); err != nil {
			return err
		}
	}
	return nil
}

// create runs `runsc run --detach` (create and start in one process) with
// its stdio away from any pipe (G1): stdin /dev/null, output to
// <box>/create.log, whose text becomes the error.
func (d *Driver) create(ctx context.Context, h string, m *boxMeta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	logPath := filepath.Join(d.boxDir(h), "create.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	defer logf.Close()
	d.rootMu.RLock()
	defer d.rootMu.RUnlock()
	args := append(d.globalArgs(m), "run", "--detach", "--bundle="+d.boxDir(h), h)
	cmd := newCmd(d.runscPath, args, nil, logf, logf)
	if d.userns != nil {
		cmd = newCmd(d.initPath, d.hostRunArgs(h, m, args), nil, logf, logf)
		cmd.Args[0] = boxinit.RoleName // the init role of the boxrun binary
		cmd.SysProcAttr = d.userns.attr()
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		// Rootless, the helper starts first: a broken one fails here.
		d.log.DebugContext(ctx, "runsc run --detach", "handle", h, "err", err)
		return fmt.Errorf("gvisor: runsc create: %w: %w", err, boxapi.ErrRuntime)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		werr = <-done
	}
	d.log.DebugContext(ctx, "runsc run --detach", "handle", h, "dur", time.Since(start), "err", werr)
	if werr != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("gvisor: runsc run: %w: %s: %w", werr, strings.TrimSpace(string(out)), boxapi.ErrRuntime)
	}
	return nil
}

// teardown destroys the sandbox of h (if any) and unmounts its overlay,
// keeping the box's files.
func (d *Driver) teardown(ctx context.Context, h string, m *boxMeta) error {
	d.closeAgent(h)
	var errs []error
	if d.readState(h) != nil {
		if _, err := d.runsc(ctx, m, time.Minute, "delete", "-force", h); err != nil {
			errs = append(errs, err)
		}
	}
	// Leftovers of a crashed or killed runsc: processes, files, cgroups.
	// Wait (up to 5 s) until none is left: a gofer still exiting keeps the
	// box's disk busy, the unmount below would then only detach it lazily,
	// and a later start would mount the same ext4 image a second time.
	for i := 0; d.killStrays(h) > 0 && i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range []string{d.stateFile(h), filepath.Join(d.runDir, h+"_sandbox:"+h+".lock"), filepath.Join(d.runDir, "runsc-"+h+".sock")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := removeCgroups(h); err != nil {
		errs = append(errs, err)
	}
	// Rootless, the overlay is mounted only in the sandbox's namespace,
	// gone with it.
	if d.userns == nil {
		if err := d.unmountRoot(h); err != nil {
			errs = append(errs, err)
		}
	}
	d.releaseNullNetNS()
	if err := d.netDown(ctx, h, m); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("gvisor: teardown %s: %w", h, errors.Join(errs...))
	}
	return nil
}

// releaseNullNetNS unmounts runsc's shared null-netns when no sandbox is
// left in the runsc root, so that an idle driver leaves no host mount.
func (d *Driver) releaseNullNetNS() {
	d.rootMu.Lock()
	defer d.rootMu.Unlock()
	ents, err := os.ReadDir(d.runDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".state") || strings.HasSuffix(e.Name(), ".lock") {
			return
		}
	}
	p := filepath.Join(d.runDir, "null-netns")
	for unix.Unmount(p, unix.MNT_DETACH) == nil {
	}
	_ = os.Remove(p)
}

// Start creates the sandbox of a stopped box again on its kept files.
func (d *Driver) Start(ctx context.Context, handle string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if !d.exists(handle) {
		return notFound(handle)
	}
	defer d.lock(handle)()
	m, err := d.readMeta(handle)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	if d.running(handle) {
		return fmt.Errorf("gvisor: sandbox %s is running: %w", handle, boxapi.ErrConflict)
	}
	if err := d.teardown(ctx, handle, m); err != nil {
		return err
	}
	return d.start(ctx, handle, m)
}

// Stop sends SIGTERM to the box's init, which passes it on to every process
// and exits once they are gone or after the stop grace; then the sandbox is
// deleted and the overlay unmounted. The files stay.
func (d *Driver) Stop(ctx context.Context, handle string) error {
	if !d.exists(handle) {
		return notFound(handle)
	}
	defer d.lock(handle)()
	m, err := d.readMeta(handle)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	if s := d.readState(handle); s != nil && procAlive(s.Sandbox.Pid, handle) {
		if _, err := d.runsc(ctx, m, 30*time.Second, "kill", handle, "TERM"); err != nil {
			d.log.Debug("gvisor: stop: kill TERM", "handle", handle, "err", err)
		}
		deadline := time.Now().Add(d.stopGrace + time.Second)
		for procAlive(s.Sandbox.Pid, handle) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return d.teardown(context.WithoutCancel(ctx), handle, m)
}

// Remove destroys the sandbox and deletes everything the box has on the
// host. An unknown handle is not an error.
func (d *Driver) Remove(ctx context.Context, handle string) error {
	if !validHandle(handle) {
		return nil
	}
	defer d.lock(handle)()
	return d.destroy(ctx, handle)
}

// destroy is Remove without the lock.
func (d *Driver) destroy(ctx context.Context, h string) error {
	if _, err := os.Stat(d.boxDir(h)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	m, err := d.readMeta(h)
	if err != nil {
		m = nil // still remove what there is
	}
	if err := d.teardown(context.WithoutCancel(ctx), h, m); err != nil {
		return err
	}
	// Never delete through a mount: that would reach the image or a volume.
	if ms, err := mountutil.Under(d.boxDir(h)); err != nil || len(ms) > 0 {
		return fmt.Errorf("gvisor: remove %s: still mounted: %v (%v): %w", h, ms, err, boxapi.ErrRuntime)
	}
	d.stats.forget(h)
	if err := removeAll(d.boxDir(h)); err != nil {
		return fmt.Errorf("gvisor: remove %s: %w", h, err)
	}
	return nil
}

// copyOwnerMode gives dst the owner and permission bits of src. With
// rootless, an owner the process may not give (anyone but itself) is
// skipped: dst stays the process's, which is root inside the box.
func copyOwnerMode(src, dst string, rootless bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dst, int(sys.Uid), int(sys.Gid)); err != nil && !(rootless && errors.Is(err, fs.ErrPermission)) {
			return err
		}
	}
	return os.Chmod(dst, st.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid))
}
