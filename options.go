package boxrun

import (
	"log/slog"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// Option configures a Manager in Open.
type Option func(*config) error

type config struct {
	defaultTTL     time.Duration // BoxSpec.TTL when 0
	defaultIdle    time.Duration // BoxSpec.IdleTimeout when 0
	hibernateAfter time.Duration // WithHibernateAfter
	pools          []PoolSpec    // WithPool
	driver         sandbox.Driver
	images         sandbox.ImageStore
	imagesSet      bool // WithImages was given (possibly nil)
	logger         *slog.Logger
	maxCPU         int64
	maxMemoryMB    int64
	stopTimeout    time.Duration
	now            func() time.Time
	eventBuffer    int
	outputLimit    int64

	journalMaxAge     time.Duration // <= 0: no age bound
	journalMaxEntries int64         // <= 0: no count bound
	linger            time.Duration // file watch linger; 0 is WatchLinger
}

// watchLinger is how long a file watch without readers is kept.
func (c config) watchLinger() time.Duration {
	if c.linger > 0 {
		return c.linger
	}
	return WatchLinger
}

// DefaultOutputLimit is how many bytes of output one exec may store unless
// WithOutputLimit says otherwise: 1 GiB.
const DefaultOutputLimit = 1 << 30

// WithOutputLimit caps the output stored per exec (stdout and stderr
// together, in bytes). Past it, the exec keeps running but its further
// output is dropped, after a stderr log event that says so (see
// docs/api-extensions.md). Zero keeps the default, DefaultOutputLimit;
// negative is invalid.
func WithOutputLimit(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("output limit must not be negative")
		}
		if n > 0 {
			c.outputLimit = n
		}
		return nil
	}
}

// WithWatchLinger sets how long a file watch whose last reader left is
// kept for a resume (see Manager.Watch); zero keeps WatchLinger (a
// minute), negative is invalid.
func WithWatchLinger(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("watch linger must not be negative")
		}
		c.linger = d
		return nil
	}
}

// WithDriver sets the isolation backend. Without it, Open uses the gVisor
// driver (Linux only) with its state under dir/gvisor and runsc found as
// gvisor.Config documents. The Manager owns the driver from Open on and
// closes it in Close.
func WithDriver(d sandbox.Driver) Option {
	return func(c *config) error { c.driver = d; return nil }
}

// WithImages sets the image store that turns image references into root
// filesystems. Without this option, Open uses an image.Store under
// dir/images; WithImages(nil) means no image store at all (drivers then get a
// nil Image, as test fakes want). The Manager owns the store (it is closed
// with the Manager if it has a Close method).
func WithImages(s sandbox.ImageStore) Option {
	return func(c *config) error { c.images, c.imagesSet = s, true; return nil }
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithLimits sets the totals of CPU and memory that running boxes may
// reserve. Zero keeps the default: the host's logical CPU count and total RAM.
func WithLimits(maxCPU, maxMemoryMB int64) Option {
	return func(c *config) error {
		if maxCPU < 0 || maxMemoryMB < 0 {
			return invalid("limits must not be negative")
		}
		if maxCPU > 0 {
			c.maxCPU = maxCPU
		}
		if maxMemoryMB > 0 {
			c.maxMemoryMB = maxMemoryMB
		}
		return nil
	}
}

// WithStopTimeout bounds how long Close waits for running execs to be
// finalized and for background work to end. Default 10s.
func WithStopTimeout(d time.Duration) Option {
	return func(c *config) error { c.stopTimeout = d; return nil }
}

// WithEventBuffer sets how many events a Subscription may fall behind
// before it is dropped. Default 256.
func WithEventBuffer(n int) Option {
	return func(c *config) error { c.eventBuffer = n; return nil }
}

// WithDefaultLifetime sets the TTL and idle timeout of boxes created without
// their own (0: no limit, the default).
func WithDefaultLifetime(ttl, idle time.Duration) Option {
	return func(c *config) error {
		if ttl < 0 || idle < 0 {
			return invalid("default ttl and idle timeout must not be negative")
		}
		c.defaultTTL, c.defaultIdle = ttl, idle
		return nil
	}
}

// WithHibernateAfter makes boxes created without their own idle timeout and
// on_expire (and without a network) hibernate after d without exec, attach
// or copy (on_expire "hibernate"; see Manager.Hibernate). It takes
// precedence over WithDefaultLifetime's idle timeout for those boxes. 0
// (the default) turns it off.
func WithHibernateAfter(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return invalid("hibernate-after must not be negative")
		}
		c.hibernateAfter = d
		return nil
	}
}
