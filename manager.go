package boxrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// Manager runs boxes in process: it persists every box, exec and output
// chunk in SQLite under its directory, drives the sandboxes through its
// Driver, and publishes events. Open one per directory; a Manager is safe
// for concurrent use. Close it when done: running boxes keep running
// (detached) and are picked up again by the next Open.
type Manager struct {
	dir    string
	outDir string // exec output logs (see outlog.go)
	cfg    config
	log    *slog.Logger
	store  *store
	bus    *bus
	driver sandbox.Driver
	images sandbox.ImageStore
	lock   *dirLock

	// imageMu orders image use against pruning: Create and pulls hold it
	// shared from resolving the image until the box row records its
	// digest; PruneImages holds it exclusively.
	imageMu sync.RWMutex

	ctx    context.Context // canceled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines (exec pumps, subscriptions)
	calls  sync.WaitGroup // in-flight API calls

	mu          sync.Mutex
	closed      bool
	reservedCPU int64
	reservedMem int64
	runs        map[string]*execRun // running execs by ID
	locks       map[string]*boxLock // per-box lifecycle locks
	net         netState            // handle -> box ID for net.denied

	pool *warmPool // WithPool; nil without

	checkpointing map[string]bool // boxes being checkpointed (see useAgent)
	agentUse      map[string]int  // attach sessions and file transfers per box
	oneShots      map[string]bool // boxes of one-shot runs (oneshot.go), by ID

	lifeMu   sync.Mutex
	life     map[string]*lifeState // running boxes with a ttl or idle timeout
	lifeWake chan struct{}         // nudges the reaper

	maintainWake chan struct{} // nudges the maintainer (retention.go)

	syncMu   sync.Mutex // guards syncQ
	syncQ    []syncItem // finished output logs to fdatasync (outsync.go)
	syncWake chan struct{}
	syncRun  sync.Mutex // held by the batch being synced

	statsMu    sync.Mutex
	cpuSamples map[string]cpuSample // box ID → last CPU reading
	lastStats  map[string]Stats     // box ID → last sample (for metrics)

	fwMu     sync.Mutex
	fwatches map[string]*fileWatch // file watches by ID (filewatch.go)

	closeOnce sync.Once
	closeErr  error
}

var (
	_ Service     = (*Manager)(nil)
	_ Snapshotter = (*Manager)(nil)
)

// Open opens (creating if needed) the Manager state in dir: the SQLite
// database dir/boxrun.db, migrated synchronously. The directory is locked
// (dir/boxrun.lock) until Close: a second Open of it, in this process or
// another, fails at once with a *StateLockedError (ErrStateLocked) naming
// the holder's PID, before touching anything. It then reconciles what a
// crash may have left: execs still marked running become failed ("server
// restarted"), boxes whose sandbox is gone become stopped, boxes caught
// mid-creation become error, and sandboxes the database does not know are
// removed from the driver.
//
// With no options, Open gives a working Manager on Linux: the gVisor driver
// (runsc found as gvisor.Config documents; the error says how to get it when
// it is missing) and an image store under dir/images. Options override each
// part (WithDriver, WithImages).
func Open(dir string, opts ...Option) (*Manager, error) {
	cfg := config{
		maxCPU:      int64(runtime.NumCPU()),
		maxMemoryMB: hostMemoryMB(),
		stopTimeout: 10 * time.Second,
		now:         time.Now,
		eventBuffer: 256,
		outputLimit: DefaultOutputLimit,

		journalMaxAge:     DefaultJournalMaxAge,
		journalMaxEntries: DefaultJournalMaxEntries,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("boxrun: open: %w", err)
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.eventBuffer <= 0 {
		cfg.eventBuffer = 256
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("boxrun: open: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boxrun: open: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("boxrun: open: %w", err)
	}
	if err := applyDefaults(dir, &cfg); err != nil {
		lock.unlock()
		return nil, fmt.Errorf("boxrun: open: %w", err)
	}
	outDir := filepath.Join(dir, "output")
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		closeParts(cfg)
		lock.unlock()
		return nil, fmt.Errorf("boxrun: open: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := openStore(ctx, filepath.Join(dir, "boxrun.db"))
	if err != nil {
		cancel()
		lock.unlock()
		closeParts(cfg)
		return nil, fmt.Errorf("boxrun: %w", err)
	}
	m := &Manager{
		dir: dir, outDir: outDir, cfg: cfg, log: cfg.logger, store: st, bus: newBus(), lock: lock,
		driver: cfg.driver, images: cfg.images, ctx: ctx, cancel: cancel,
		runs: map[string]*execRun{}, locks: map[string]*boxLock{},
		checkpointing: map[string]bool{}, agentUse: map[string]int{}, oneShots: map[string]bool{},
		cpuSamples: map[string]cpuSample{}, lastStats: map[string]Stats{},
		life: map[string]*lifeState{}, lifeWake: make(chan struct{}, 1),
		maintainWake: make(chan struct{}, 1), syncWake: make(chan struct{}, 1),
	}
	di := m.DriverInfo()
	attrs := []any{"driver", di.Name}
	for k, v := range di.Details {
		attrs = append(attrs, k, v)
	}
	m.log.Info("boxrun: opened", append(attrs, "dir", dir)...)
	m.watchNet()
	if err := m.recover(ctx); err != nil {
		cancel()
		st.close()
		lock.unlock()
		closeParts(cfg)
		return nil, fmt.Errorf("boxrun: recover: %w", err)
	}
	if err := m.recoverSnapshots(ctx); err != nil {
		cancel()
		st.close()
		lock.unlock()
		closeParts(cfg)
		return nil, fmt.Errorf("boxrun: recover snapshots: %w", err)
	}
	if err := m.loadLifetimes(ctx); err != nil {
		cancel()
		st.close()
		lock.unlock()
		closeParts(cfg)
		return nil, fmt.Errorf("boxrun: lifetimes: %w", err)
	}
	m.wg.Add(1)
	go m.syncer()
	m.wg.Add(1)
	go m.reaper()
	m.wg.Add(1)
	go m.watchSandboxes()
	m.wg.Add(1)
	go m.maintainer()
	if len(cfg.pools) > 0 {
		m.pool = newWarmPool(cfg.pools)
		m.wg.Add(1)
		go m.refiller()
	}
	return m, nil
}

// closeParts closes the driver and image store that Open owns when Open
// fails after taking them.
func closeParts(cfg config) {
	if c, ok := cfg.images.(io.Closer); ok && c != nil {
		_ = c.Close()
	}
	_ = cfg.driver.Close()
}

// Dir returns the Manager's state directory.
func (m *Manager) Dir() string { return m.dir }

// DriverInfo names the Manager's driver and, when it is a Describer, the
// details it reports (for example the QEMU accelerator in use), plus the
// warm pools' size, ready count, hits and misses (WithPool).
func (m *Manager) DriverInfo() DriverInfo {
	info := DriverInfo{Name: m.driver.Name(), Details: map[string]string{}}
	if d, ok := m.driver.(sandbox.Describer); ok {
		for k, v := range d.Describe() {
			info.Details[k] = v
		}
	}
	m.poolDetails(info.Details)
	return info
}

// Close finalizes running execs (they fail with "server shutting down"),
// ends subscriptions, waits (up to the stop timeout) for background work,
// and closes the database, the image store and the driver, then releases
// the state directory. Boxes keep running. Close waits for every exec it
// ends: an exec whose process does not exit within the stop timeout is
// recorded as failed without it, and nothing of it touches the database
// afterwards, so the store is never closed under an exec. Close is
// idempotent; later calls on the Manager return ErrClosed.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		runs := make([]*execRun, 0, len(m.runs))
		for _, r := range m.runs {
			runs = append(runs, r)
		}
		m.mu.Unlock()
		for _, r := range runs {
			r.kill(ExecFailed, "server shutting down")
		}
		// Canceling the Manager's context ends attach sessions (killing
		// their programs), live event streams and subscriptions. Exec pumps
		// store their final state with a context that is not canceled.
		m.cancel()
		m.closeWatches()
		timer := time.NewTimer(m.cfg.stopTimeout)
		defer timer.Stop()
		expired := false
		for _, r := range runs {
			if !expired {
				select {
				case <-r.done:
					continue
				case <-timer.C:
					expired = true
				}
			}
			select {
			case <-r.done:
			default:
				m.log.Warn("close: exec process did not exit; recording it failed", "exec", r.exec.ID)
				r.finish(nil, "server shutting down")
			}
		}
		done := make(chan struct{})
		go func() { m.calls.Wait(); m.wg.Wait(); close(done) }()
		if !expired {
			select {
			case <-done:
			case <-timer.C:
				m.log.Warn("close: background work did not finish in time", "timeout", m.cfg.stopTimeout)
			}
		}
		m.syncPending() // every finished exec's log is on disk before the store closes
		m.bus.closeAll()
		var errs []error
		errs = append(errs, m.store.close())
		if c, ok := m.images.(io.Closer); ok && c != nil {
			errs = append(errs, c.Close())
		}
		errs = append(errs, m.driver.Close())
		errs = append(errs, m.lock.unlock())
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// enter registers an API call; it fails with ErrClosed after Close.
func (m *Manager) enter() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.calls.Add(1)
	return nil
}

func (m *Manager) leave() { m.calls.Done() }

func (m *Manager) now() time.Time { return m.cfg.now().UTC() }

// Info reports the resource limits.
func (m *Manager) Info(ctx context.Context) (Info, error) {
	return Info{MaxCPU: m.cfg.maxCPU, MaxMemoryMB: m.cfg.maxMemoryMB}, nil
}

// boxLock serializes lifecycle changes of one box.
type boxLock struct {
	mu   sync.Mutex
	refs int
}

// lockBox locks box id for a lifecycle change and returns the unlock func.
func (m *Manager) lockBox(id string) func() {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &boxLock{}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
}

// reserve takes cpu and memory from the limits, or fails with
// RESOURCE_EXCEEDED (long messages on create, short ones on start).
func (m *Manager) reserve(cpu, mem int64, onCreate bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reservedCPU+cpu > m.cfg.maxCPU {
		if onCreate {
			return Errorf(CodeResourceExceeded, "Total CPU limit (%d) would be exceeded", m.cfg.maxCPU)
		}
		return Errorf(CodeResourceExceeded, "Total CPU limit would be exceeded")
	}
	if m.reservedMem+mem > m.cfg.maxMemoryMB {
		if onCreate {
			return Errorf(CodeResourceExceeded, "Total memory limit (%dMB) would be exceeded", m.cfg.maxMemoryMB)
		}
		return Errorf(CodeResourceExceeded, "Total memory limit would be exceeded")
	}
	m.reservedCPU += cpu
	m.reservedMem += mem
	return nil
}

func (m *Manager) release(cpu, mem int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reservedCPU = max(0, m.reservedCPU-cpu)
	m.reservedMem = max(0, m.reservedMem-mem)
}

// hostMemoryMB reads MemTotal from /proc/meminfo; 8192 when unknown.
func hostMemoryMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 8192
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if n, _ := fmt.Sscanf(line, "MemTotal: %d kB", &kb); n == 1 {
			return kb / 1024
		}
	}
	return 8192
}
