package boxrun

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// PoolSpec asks WithPool to keep Size sandboxes of Image with a shape
// created and running ahead of time, so that a Create with a matching spec
// takes one instead of starting a sandbox.
type PoolSpec struct {
	Image    string // image reference, exactly as Create gets it
	CPU      int64  // vCPUs; 0 means DefaultCPU
	MemoryMB int64  // MiB; 0 means DefaultMemoryMB
	Size     int    // ready sandboxes to keep, at least 1
}

// poolRetry is how long the refiller waits after a failed refill.
const poolRetry = 5 * time.Second

// poolRefillDelay is how long after the last take the refiller waits
// before it starts a sandbox: a sandbox start takes the host's CPU for a
// while, and the box just handed out (its first exec) and the rest of a
// burst of creates come first.
const poolRefillDelay = 300 * time.Millisecond

// WithPool keeps warm sandboxes (see PoolSpec). A Create takes one when its
// spec has the pool's image and shape and nothing a pooled sandbox cannot
// have: no network, volumes, env, ports, workdir or disk size of its own,
// and a pull policy other than always. The box record, its events and the
// API output are exactly those of a normal create; the pool refills in the
// background. Pooled sandboxes are not reserved against WithLimits until a
// Create takes them (they do use host memory). They are not in the
// database: Close removes them, and after a crash the next Open's prune
// does. Hits and misses show in DriverInfo's details.
func WithPool(specs ...PoolSpec) Option {
	return func(c *config) error {
		for _, s := range specs {
			switch {
			case s.Image == "":
				return invalid("pool image is required")
			case s.Size < 1:
				return invalid("pool size must be at least 1")
			case s.CPU < 0 || s.MemoryMB < 0:
				return invalid("pool cpu and memory must not be negative")
			}
			if s.CPU == 0 {
				s.CPU = DefaultCPU
			}
			if s.MemoryMB == 0 {
				s.MemoryMB = DefaultMemoryMB
			}
			c.pools = append(c.pools, s)
		}
		return nil
	}
}

// warmPool holds the ready sandboxes of every PoolSpec.
type warmPool struct {
	mu       sync.Mutex
	entries  []*poolEntry
	closed   bool
	lastTake time.Time // when a Create last took (or missed) a sandbox
	wake     chan struct{}
}

type poolEntry struct {
	spec         PoolSpec
	ready        []pooledSandbox
	hits, misses int64
}

type pooledSandbox struct {
	handle string
	img    *sandbox.Image
}

func newWarmPool(specs []PoolSpec) *warmPool {
	p := &warmPool{wake: make(chan struct{}, 1)}
	for _, s := range specs {
		p.entries = append(p.entries, &poolEntry{spec: s})
	}
	return p
}

func (p *warmPool) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// poolable reports whether a Create of spec (defaults applied) may take a
// pooled sandbox, and the pool entry it would come from.
func (m *Manager) poolEntry(spec *BoxSpec) *poolEntry {
	if m.pool == nil || spec.Network || len(spec.Volumes) > 0 || len(spec.Env) > 0 || len(spec.Ports) > 0 ||
		spec.Egress != nil || spec.Workdir != "" || spec.DiskSizeGB != DefaultDiskSizeGB || spec.Pull == PullAlways {
		return nil
	}
	for _, e := range m.pool.entries {
		if e.spec.Image == spec.Image && e.spec.CPU == spec.CPU && e.spec.MemoryMB == spec.MemoryMB {
			return e
		}
	}
	return nil
}

// takePooled takes a ready sandbox of e made from img (same rootfs and
// digest as the Create resolved); "" is a miss. A pooled sandbox of another
// image version is removed.
func (m *Manager) takePooled(e *poolEntry, img *sandbox.Image) string {
	p := m.pool
	p.mu.Lock()
	var stale []string
	handle := ""
	for len(e.ready) > 0 && handle == "" {
		ps := e.ready[len(e.ready)-1]
		e.ready = e.ready[:len(e.ready)-1]
		if img != nil && ps.img != nil && (ps.img.Digest != img.Digest || ps.img.Rootfs != img.Rootfs) {
			stale = append(stale, ps.handle)
			continue
		}
		handle = ps.handle
	}
	if handle != "" {
		e.hits++
	} else {
		e.misses++
	}
	p.lastTake = time.Now()
	p.mu.Unlock()
	for _, h := range stale {
		if err := m.driver.Remove(context.WithoutCancel(m.ctx), h); err != nil {
			m.log.Warn("pool: remove a stale sandbox", "handle", h, "err", err)
		}
	}
	p.nudge()
	return handle
}

// refiller keeps the pools full until the Manager closes, then removes
// what is left in them.
func (m *Manager) refiller() {
	defer m.wg.Done()
	defer m.drainPool()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.pool.wake:
		case <-t.C:
		}
		m.pool.mu.Lock()
		wait := poolRefillDelay - time.Since(m.pool.lastTake)
		m.pool.mu.Unlock()
		if wait > 0 {
			t.Reset(wait)
			continue
		}
		failed := false
		for _, e := range m.pool.entries {
			for m.ctx.Err() == nil {
				m.pool.mu.Lock()
				n := len(e.ready)
				m.pool.mu.Unlock()
				if n >= e.spec.Size {
					break
				}
				if err := m.refillOne(e); err != nil {
					m.log.Warn("pool: refill", "image", e.spec.Image, "err", err)
					failed = true
					break
				}
			}
		}
		if failed {
			t.Reset(poolRetry)
		}
	}
}

// refillOne creates one sandbox for e.
func (m *Manager) refillOne(e *poolEntry) error {
	m.imageMu.RLock()
	img, err := m.pullImage(m.ctx, e.spec.Image, PullMissing)
	if err != nil {
		m.imageMu.RUnlock()
		return err
	}
	sb := sandbox.Spec{BoxID: newID("pool_"), Image: img, CPU: e.spec.CPU, MemoryMB: e.spec.MemoryMB,
		DiskSizeGB: DefaultDiskSizeGB, Workdir: DefaultWorkdir}
	if img != nil {
		if wd := img.Config.WorkingDir; strings.HasPrefix(wd, "/") {
			sb.Workdir = wd
		}
		sb.Env = append(sb.Env, img.Config.Env...)
		sb.User = img.Config.User
	}
	h, err := m.driver.Create(m.ctx, sb)
	m.imageMu.RUnlock()
	if err != nil {
		return err
	}
	m.pool.mu.Lock()
	if m.pool.closed {
		m.pool.mu.Unlock()
		return m.driver.Remove(context.WithoutCancel(m.ctx), h)
	}
	e.ready = append(e.ready, pooledSandbox{handle: h, img: img})
	m.pool.mu.Unlock()
	return nil
}

// drainPool removes the ready sandboxes (Close).
func (m *Manager) drainPool() {
	m.pool.mu.Lock()
	m.pool.closed = true
	var hs []string
	for _, e := range m.pool.entries {
		for _, ps := range e.ready {
			hs = append(hs, ps.handle)
		}
		e.ready = nil
	}
	m.pool.mu.Unlock()
	for _, h := range hs {
		if err := m.driver.Remove(context.WithoutCancel(m.ctx), h); err != nil {
			m.log.Warn("pool: remove at close", "handle", h, "err", err)
		}
	}
}

// poolDetails adds the pools' state to DriverInfo details:
// pool.<image>[<cpu>,<mem>MB].{size,ready,hits,misses}.
func (m *Manager) poolDetails(d map[string]string) {
	if m.pool == nil {
		return
	}
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	for _, e := range m.pool.entries {
		k := fmt.Sprintf("pool.%s[%d,%dMB].", e.spec.Image, e.spec.CPU, e.spec.MemoryMB)
		d[k+"size"] = strconv.Itoa(e.spec.Size)
		d[k+"ready"] = strconv.Itoa(len(e.ready))
		d[k+"hits"] = strconv.FormatInt(e.hits, 10)
		d[k+"misses"] = strconv.FormatInt(e.misses, 10)
	}
}

// poolImages lists the pools' images (kept by PruneImages).
func (m *Manager) poolImages() []string {
	if m.pool == nil {
		return nil
	}
	var out []string
	for _, e := range m.pool.entries {
		out = append(out, e.spec.Image)
	}
	return out
}
