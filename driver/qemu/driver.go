package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/boxnet"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Driver = (*Driver)(nil)

// Timeouts of the box lifecycle. Emulated (TCG) boots on a busy host are
// slow, so they are generous.
const (
	bootTimeout     = 3 * time.Minute
	shutdownTimeout = 20 * time.Second
)

// Driver is a sandbox.Driver that runs every box in its own QEMU micro-VM.
// Its methods are safe for concurrent use. See the package doc.
type Driver struct {
	dir    string
	log    *slog.Logger
	qemu   string
	kernel string
	initrd string
	mkfs   string
	accel  string
	tscKHz int64

	virtiofsd string // "" when not installed: volumes are unsupported
	coldBoot  bool   // Config.ColdBoot

	net      *boxnet.Host // nil: networked boxes are refused (netErr says why)
	netErr   error
	onDenied atomic.Pointer[func(sandbox.NetDenial)]

	tmplMu      sync.Mutex       // serializes template builds; guards the maps below
	tmplFailed  map[string]error // template key → why snapshot boots of it are off
	tmplRetried map[string]bool  // template key → its snapshot was remade once

	mu     sync.Mutex
	boxes  map[string]*box
	closed bool
}

// box is the in-memory state of one box. mu serializes its lifecycle
// operations and guards conn and state.
type box struct {
	handle string
	dir    string

	mu    sync.Mutex
	state boxState
	conn  *agentproto.Conn // nil until dialed; replaced when dead
}

// boxState is persisted as <box dir>/box.json.
type boxState struct {
	Handle   string          `json:"handle"`
	BoxID    string          `json:"box_id"`
	CPU      int64           `json:"cpu"`
	MemoryMB int64           `json:"memory_mb"`
	Workdir  string          `json:"workdir"`
	Env      []string        `json:"env"`
	Volumes  []boxapi.Volume `json:"volumes,omitempty"`
	PID      int             `json:"pid"` // QEMU's PID while running, else 0
	// User is SandboxSpec.User resolved in the image at Create: the user
	// of execs (zero, with an empty Home, in boxes made before it
	// existed: root).
	User userdb.User `json:"user"`
	netFields
}

// New returns a Driver keeping its state in cfg.Dir. It finds QEMU, the
// kernel, its modules and the agent, chooses the accelerator and builds the
// initramfs; it fails with an error wrapping ErrUnsupported when one of
// them is missing. It starts nothing.
func New(cfg Config) (*Driver, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("qemu: Config.Dir is required: %w", boxapi.ErrInvalid)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	d := &Driver{dir: dir, log: cfg.Logger, boxes: map[string]*box{}, coldBoot: cfg.ColdBoot,
		tmplFailed: map[string]error{}, tmplRetried: map[string]bool{}}
	if d.log == nil {
		d.log = discardLogger()
	}
	for _, sub := range []string{"boxes", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	qemu := cfg.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	if d.qemu, err = exec.LookPath(qemu); err != nil {
		return nil, fmt.Errorf("qemu: %s not found (apt-get install qemu-system-x86): %w", qemu, ErrUnsupported)
	}
	if d.mkfs, err = lookSbin("mkfs.ext4"); err != nil {
		return nil, fmt.Errorf("qemu: mkfs.ext4 not found (apt-get install e2fsprogs): %w", ErrUnsupported)
	}
	d.kernel = cfg.Kernel
	if d.kernel == "" {
		if d.kernel, err = FindKernel(); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	modDir := cfg.Modules
	if modDir == "" {
		v := kernelVersion(d.kernel)
		if v == "" {
			return nil, fmt.Errorf("qemu: cannot tell the version of kernel %s; set Config.Modules: %w", d.kernel, ErrUnsupported)
		}
		modDir = "/lib/modules/" + v
	}
	agent, err := findAgent(cfg.Agent, dir)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if d.initrd, err = buildInitramfs(dir, agent, modDir); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	d.tscKHz = tscKHz()
	switch cfg.Accel {
	case "", AccelAuto:
		d.accel = AccelTCG
		ok, why := probeKVM()
		if ok {
			// Trust only a guest that boots: a test boot with KVM.
			if err := d.probeBoot(context.Background(), AccelKVM, kvmProbeTimeout); err != nil {
				why = fmt.Sprintf("KVM test boot failed: %v", err)
			} else {
				d.accel = AccelKVM
			}
		}
		d.log.Info("qemu: accelerator", "accel", d.accel, "reason", why)
	case AccelKVM, AccelTCG:
		d.accel = cfg.Accel
		d.log.Info("qemu: accelerator", "accel", d.accel, "reason", "configured")
	default:
		return nil, fmt.Errorf("qemu: unknown accelerator %q: %w", cfg.Accel, boxapi.ErrInvalid)
	}
	d.virtiofsd = findVirtiofsd()
	d.newNet(cfg)
	d.restoreNet(context.Background())
	return d, nil
}

func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// Name returns "qemu".
func (d *Driver) Name() string { return "qemu" }

// Accel returns the accelerator in use: AccelKVM or AccelTCG.
func (d *Driver) Accel() string { return d.accel }

// Describe implements sandbox.Describer: the accelerator and the guest kernel.
func (d *Driver) Describe() map[string]string {
	return map[string]string{"accel": d.Accel(), "kernel": d.Kernel()}
}

// Kernel returns the guest kernel in use.
func (d *Driver) Kernel() string { return d.kernel }

// Close releases the driver's connections to the agents. Running boxes keep
// running and can be reached again by a new Driver on the same Dir. Close
// is idempotent; a closed Driver still works (it reconnects on demand), so
// cleanups that run after Close succeed.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	boxes := d.boxes
	d.boxes = map[string]*box{}
	d.mu.Unlock()
	if d.net != nil {
		d.net.Close()
	}
	for _, b := range boxes {
		b.mu.Lock()
		if b.conn != nil {
			b.conn.Close()
			b.conn = nil
		}
		b.mu.Unlock()
	}
	return nil
}

func (d *Driver) boxDir(handle string) string { return filepath.Join(d.dir, "boxes", handle) }

// validHandle reports whether h can be a handle (16 hex digits), so that a
// handle never names a path outside Dir.
func validHandle(h string) bool {
	if len(h) != 16 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// get returns the box of handle, loading it from disk after a restart, or
// an error wrapping boxapi.ErrNotFound.
func (d *Driver) get(handle string) (*box, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.boxes[handle]; ok {
		return b, nil
	}
	if !validHandle(handle) {
		return nil, fmt.Errorf("qemu: sandbox %q: %w", handle, boxapi.ErrNotFound)
	}
	b := &box{handle: handle, dir: d.boxDir(handle)}
	raw, err := os.ReadFile(filepath.Join(b.dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("qemu: sandbox %s: %w", handle, boxapi.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &b.state); err != nil {
		return nil, fmt.Errorf("qemu: sandbox %s: bad state: %w", handle, err)
	}
	d.boxes[handle] = b
	return b, nil
}

func (b *box) save() error {
	raw, err := json.MarshalIndent(&b.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, stateFile))
}

// running reports whether b's QEMU is alive. Callers hold b.mu.
func (b *box) running() bool { return isBoxProcess(b.state.PID, b.handle) }

// Create makes the box's disk from the image and boots it.
func (d *Driver) Create(ctx context.Context, spec sandbox.Spec) (string, error) {
	var nf boxState
	if err := d.netSpec(spec, &nf); err != nil {
		return "", err
	}
	if spec.Image == nil || spec.Image.Rootfs == "" {
		return "", fmt.Errorf("qemu: a box needs an image rootfs: %w", boxapi.ErrInvalid)
	}
	for _, v := range spec.Volumes {
		if !filepath.IsAbs(v.HostPath) || !filepath.IsAbs(v.GuestPath) {
			return "", fmt.Errorf("qemu: volume paths must be absolute: %w", boxapi.ErrInvalid)
		}
		if st, err := os.Stat(v.HostPath); err != nil || !st.IsDir() {
			return "", fmt.Errorf("qemu: volume %s is not a directory: %w", v.HostPath, boxapi.ErrInvalid)
		}
	}
	user, err := userdb.Resolve(spec.Image.Rootfs, spec.User)
	if errors.Is(err, userdb.ErrUnknown) || errors.Is(err, userdb.ErrSyntax) {
		return "", fmt.Errorf("qemu: user %q: %w: %w", spec.User, err, boxapi.ErrInvalid)
	} else if err != nil {
		return "", fmt.Errorf("qemu: user %q: %w", spec.User, err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	handle := hex.EncodeToString(rnd[:])
	b := &box{handle: handle, dir: d.boxDir(handle)}
	b.state = boxState{
		Handle:   handle,
		BoxID:    spec.BoxID,
		CPU:      max(spec.CPU, 1),
		MemoryMB: max(spec.MemoryMB, 128),
		Workdir:  spec.Workdir,
		Env:      slices.Clone(spec.Env),
		Volumes:  slices.Clone(spec.Volumes),
		User:     user,
	}
	b.state.netFields = nf.netFields
	if b.state.Workdir == "" {
		b.state.Workdir = boxapi.DefaultWorkdir
	}
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	fail := func(err error) (string, error) {
		if rerr := d.removeDir(ctx, handle, b.dir); rerr != nil {
			d.log.Error("qemu: cleanup after failed create", "handle", handle, "err", rerr)
		}
		return "", err
	}
	if err := b.save(); err != nil {
		return fail(fmt.Errorf("qemu: %w", err))
	}
	start := time.Now()
	if err := d.makeDisk(ctx, b, spec.Image.Rootfs, spec.DiskSizeGB); err != nil {
		return fail(err)
	}
	d.log.Debug("qemu: disk made", "handle", handle, "took", time.Since(start))
	b.mu.Lock()
	defer b.mu.Unlock()
	d.mu.Lock()
	d.boxes[handle] = b
	d.mu.Unlock()
	if err := d.boot(ctx, b); err != nil {
		d.mu.Lock()
		delete(d.boxes, handle)
		d.mu.Unlock()
		return fail(err)
	}
	return handle, nil
}

// makeDisk builds the box's ext4 disk from rootfs: a sparse file of
// sizeGB GiB (1 GiB when 0).
func (d *Driver) makeDisk(ctx context.Context, b *box, rootfs string, sizeGB int64) error {
	size := max(sizeGB, 1) << 30
	disk := filepath.Join(b.dir, diskFile)
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("qemu: disk: %w", err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return fmt.Errorf("qemu: disk: %w", err)
	}
	cmd := exec.CommandContext(ctx, d.mkfs, "-q", "-F", "-t", "ext4", "-L", "boxrun", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1", "-d", rootfs, disk)
	if out, err := cmd.CombinedOutput(); err != nil {
		return ctxErr(ctx, fmt.Errorf("qemu: mkfs.ext4 -d %s: %w: %s", rootfs, err, out))
	}
	return nil
}

// boot launches QEMU, waits for the agent and sets the box up. On error the
// VM is killed. Callers hold b.mu.
func (d *Driver) boot(ctx context.Context, b *box) (err error) {
	start := time.Now()
	if err := d.startVolumes(ctx, b); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if b.conn != nil {
				b.conn.Close()
				b.conn = nil
			}
			killBox(context.WithoutCancel(ctx), b.handle)
			d.cleanVolumes(b)
			if nerr := d.netDown(ctx, b); nerr != nil {
				d.log.Warn("qemu: network cleanup after failed boot", "handle", b.handle, "err", nerr)
			}
			b.state.PID = 0
			b.save()
		}
	}()
	if err := d.netUp(ctx, b); err != nil {
		return err
	}
	if !d.coldBoot && len(b.state.Volumes) == 0 {
		err := d.bootSnapshot(ctx, b)
		if err == nil {
			d.log.Info("qemu: box ready", "handle", b.handle, "accel", d.accel, "boot", "snapshot", "took", time.Since(start))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		d.log.Warn("qemu: snapshot boot failed; booting cold", "handle", b.handle, "err", err, "qemu_log", qemuLogTail(b.dir), "console", consoleTail(b.dir))
		if b.conn != nil {
			b.conn.Close()
			b.conn = nil
		}
		killBox(context.WithoutCancel(ctx), b.handle)
	}
	if err := d.launch(ctx, b); err != nil {
		return err
	}
	if err := b.save(); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	if err := d.connect(ctx, b); err != nil {
		return err
	}
	d.log.Info("qemu: box ready", "handle", b.handle, "accel", d.accel, "boot", "cold", "took", time.Since(start))
	return nil
}

// connect dials the agent of a running box, waits until it answers and
// sends the setup (idempotent). Callers hold b.mu.
func (d *Driver) connect(ctx context.Context, b *box) error {
	bctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	// Watch QEMU: if it dies while we wait, fail at once.
	died := make(chan struct{})
	watched := make(chan struct{})
	defer func() { cancel(); <-watched }()
	pid, handle := b.state.PID, b.handle
	go func() {
		defer close(watched)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				if !isBoxProcess(pid, handle) {
					close(died)
					cancel()
					return
				}
			}
		}
	}()
	conn, err := dialAgent(bctx, b.dir)
	if err != nil {
		return fmt.Errorf("qemu: dial agent of %s: %w", b.handle, err)
	}
	setup := &agentproto.Setup{
		Entropy:      entropy(),
		TimeUnixNano: time.Now().UnixNano(),
		Hostname:     hostname(b),
		RootDevice:   "/dev/vda",
		Workdir:      b.state.Workdir,
		Net:          netSetup(b),
	}
	for i, v := range b.state.Volumes {
		setup.Volumes = append(setup.Volumes, agentproto.Mount{Tag: vfsTag(i), Path: v.GuestPath, Readonly: v.Readonly})
	}
	res, err := call(bctx, conn, &agentproto.Request{Op: agentproto.OpSetup, Setup: setup})
	if err == nil && res.Info != agentproto.AgentInfo {
		// A stale agent would ignore what it does not know (the exec
		// user, for one) instead of failing.
		conn.Close()
		return fmt.Errorf("qemu: box %s: agent %q does not match this driver (%s); rebuild it with BuildAgent: %w",
			b.handle, res.Info, agentproto.AgentInfo, boxapi.ErrRuntime)
	}
	if err != nil {
		conn.Close()
		select {
		case <-died:
			return fmt.Errorf("qemu: box %s: %w before its agent was ready; console: %s", b.handle, errExited, consoleTail(b.dir))
		default:
		}
		if ctx.Err() == nil && bctx.Err() != nil {
			return fmt.Errorf("qemu: box %s: agent not ready after %v: %w; console: %s", b.handle, bootTimeout, boxapi.ErrTimeout, consoleTail(b.dir))
		}
		return fmt.Errorf("qemu: box %s setup: %w", b.handle, ctxErr(ctx, err))
	}
	if b.conn != nil {
		b.conn.Close()
	}
	b.conn = conn
	return nil
}

func hostname(b *box) string {
	if b.state.BoxID != "" && len(b.state.BoxID) <= 63 {
		return b.state.BoxID
	}
	return b.handle
}

// agent returns a live session with a running box's agent, reconnecting
// after a restart of the host process or a lost connection.
func (d *Driver) agent(ctx context.Context, handle string) (*agentproto.Conn, error) {
	b, err := d.get(handle)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil && !b.conn.Closed() {
		return b.conn, nil
	}
	if !b.running() {
		return nil, fmt.Errorf("qemu: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
	}
	if err := d.connect(ctx, b); err != nil {
		return nil, err
	}
	return b.conn, nil
}
