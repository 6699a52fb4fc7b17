package gvisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Statser = (*Driver)(nil)

// slowStatsTTL is how long the costly parts of a sample are reused: the
// process count (one `runsc events --stats` call, a process start) and the
// disk use (a walk of the writable layer).
const slowStatsTTL = 5 * time.Second

// slowStats is the cached costly part of a box's sample.
type slowStats struct {
	procsAt  time.Time
	procs    int64
	diskAt   time.Time
	disk     int64
	peak     int64 // highest memory seen, when no cgroup keeps it
	inflight bool  // a refresh of procs is running
}

// statsCache holds slowStats per handle; entries go with the box.
type statsCache struct {
	mu sync.Mutex
	m  map[string]*slowStats
}

func (c *statsCache) get(h string) *slowStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*slowStats{}
	}
	s := c.m[h]
	if s == nil {
		s = &slowStats{procs: -1, disk: -1}
		c.m[h] = s
	}
	return s
}

func (c *statsCache) forget(h string) {
	c.mu.Lock()
	delete(c.m, h)
	c.mu.Unlock()
}

// Stats samples a running sandbox. With cgroups (root) CPU time and memory
// (current without inactive file cache, peak, limit) come from the box's
// cgroup, which holds the sandbox's Sentry and gofer: memory a box
// allocates is Sentry memory and shows there. The process count is the
// box's own (guest) processes from `runsc events --stats`, and the disk use
// a walk of the writable layer; both are refreshed at most every
// slowStatsTTL. Rootless (no cgroups), CPU and memory come from runsc too.
// Network counters come from the host end of a networked box's veth pair
// (the box's receive is the host end's transmit); -1 for a box without
// network (loopback only).
func (d *Driver) Stats(ctx context.Context, handle string) (sandbox.Stats, error) {
	out := sandbox.Stats{MemoryBytes: -1, MemoryPeakBytes: -1, MemoryLimitBytes: -1, Processes: -1, DiskBytes: -1, NetRxBytes: -1, NetTxBytes: -1}
	if err := d.checkOpen(); err != nil {
		return out, err
	}
	if !d.exists(handle) {
		return out, notFound(handle)
	}
	if !d.running(handle) {
		return out, fmt.Errorf("gvisor: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
	}
	m, err := d.readMeta(handle)
	if err != nil {
		return out, fmt.Errorf("gvisor: %w", err)
	}
	if m.MemoryMB > 0 {
		out.MemoryLimitBytes = m.MemoryMB << 20
	}
	if m.Network && m.Net != nil && m.Net.HostIf != "" {
		dir := filepath.Join("/sys/class/net", m.Net.HostIf, "statistics")
		if tx, err := readInt(filepath.Join(dir, "tx_bytes")); err == nil {
			out.NetRxBytes = tx
		}
		if rx, err := readInt(filepath.Join(dir, "rx_bytes")); err == nil {
			out.NetTxBytes = rx
		}
	}
	slow := d.stats.get(handle)
	haveCgroup := false
	switch d.limits.Cgroups {
	case "v1":
		haveCgroup = d.cgroupV1Stats(handle, &out)
	case "v2":
		haveCgroup = d.cgroupV2Stats(handle, &out)
	}
	now := time.Now()
	d.stats.mu.Lock()
	needProcs := (!slow.inflight && now.Sub(slow.procsAt) > slowStatsTTL) || !haveCgroup
	if needProcs {
		slow.inflight = true
	}
	needDisk := now.Sub(slow.diskAt) > slowStatsTTL
	d.stats.mu.Unlock()
	if needProcs {
		ev, err := d.runscEvents(ctx, handle, m)
		d.stats.mu.Lock()
		slow.inflight = false
		if err == nil {
			slow.procsAt = now
			slow.procs = ev.Data.Pids.Current
		}
		d.stats.mu.Unlock()
		if err == nil && !haveCgroup {
			out.CPUTime = time.Duration(ev.Data.CPU.Usage.Total)
			out.MemoryBytes = ev.Data.Memory.Usage.Usage
		}
		if err != nil && !haveCgroup {
			if !d.running(handle) {
				return out, fmt.Errorf("gvisor: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
			}
			return out, fmt.Errorf("gvisor: stats: %w", err)
		}
	}
	if needDisk {
		var m *boxMeta
		if mm, err := d.readMeta(handle); err == nil {
			m = mm
		}
		n, err := diskUsage(d.rawUpper(handle, m))
		d.stats.mu.Lock()
		if err == nil {
			slow.diskAt, slow.disk = now, n
		}
		d.stats.mu.Unlock()
	}
	d.stats.mu.Lock()
	out.Processes, out.DiskBytes = slow.procs, slow.disk
	if !haveCgroup && out.MemoryBytes >= 0 {
		slow.peak = max(slow.peak, out.MemoryBytes)
		out.MemoryPeakBytes = slow.peak
	}
	d.stats.mu.Unlock()
	return out, nil
}

// runscEvent is the part of `runsc events --stats` output the driver reads.
type runscEvent struct {
	Data struct {
		CPU struct {
			Usage struct {
				Total int64 `json:"total"` // ns
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Usage int64 `json:"usage"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current int64 `json:"current"`
		} `json:"pids"`
	} `json:"data"`
}

func (d *Driver) runscEvents(ctx context.Context, h string, m *boxMeta) (*runscEvent, error) {
	b, err := d.runsc(ctx, m, 10*time.Second, "events", "--stats", h)
	if err != nil {
		return nil, err
	}
	var ev runscEvent
	if err := json.Unmarshal(bytes.TrimSpace(b), &ev); err != nil {
		return nil, fmt.Errorf("runsc events: %w", err)
	}
	return &ev, nil
}

// cgroupV1Stats fills CPU and memory from the v1 hierarchies; false when
// the box's cgroup is not there.
func (d *Driver) cgroupV1Stats(h string, out *sandbox.Stats) bool {
	cpu, err := readInt(filepath.Join(cgroupRoot, "cpuacct", cgroupParent, h, "cpuacct.usage"))
	if err != nil {
		return false
	}
	out.CPUTime = time.Duration(cpu)
	mem := filepath.Join(cgroupRoot, "memory", cgroupParent, h)
	if usage, err := readInt(filepath.Join(mem, "memory.usage_in_bytes")); err == nil {
		inactive := statField(filepath.Join(mem, "memory.stat"), "total_inactive_file")
		out.MemoryBytes = max(0, usage-inactive)
	}
	if peak, err := readInt(filepath.Join(mem, "memory.max_usage_in_bytes")); err == nil {
		out.MemoryPeakBytes = peak
	}
	if lim, err := readInt(filepath.Join(mem, "memory.limit_in_bytes")); err == nil && lim < 1<<50 {
		out.MemoryLimitBytes = lim
	}
	return true
}

// cgroupV2Stats fills CPU and memory from the unified hierarchy; false when
// the box's cgroup is not there.
func (d *Driver) cgroupV2Stats(h string, out *sandbox.Stats) bool {
	dir := filepath.Join(cgroupRoot, cgroupParent, h)
	usec := statField(filepath.Join(dir, "cpu.stat"), "usage_usec")
	if usec < 0 {
		return false
	}
	out.CPUTime = time.Duration(usec) * time.Microsecond
	if cur, err := readInt(filepath.Join(dir, "memory.current")); err == nil {
		inactive := statField(filepath.Join(dir, "memory.stat"), "inactive_file")
		out.MemoryBytes = max(0, cur-max(0, inactive))
	}
	if peak, err := readInt(filepath.Join(dir, "memory.peak")); err == nil {
		out.MemoryPeakBytes = peak
	}
	if lim, err := readInt(filepath.Join(dir, "memory.max")); err == nil {
		out.MemoryLimitBytes = lim
	}
	return true
}

// readInt reads a file holding one decimal number ("max" is an error).
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// statField returns the value of key in a "key value" per line file (cgroup
// memory.stat, cpu.stat); -1 when missing.
func statField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// diskUsage sums the allocated size of every file under dir (each hard
// link once), without following symlinks.
func diskUsage(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		blocks, ino, nlink := statBlocks(info)
		if nlink > 1 {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		total += blocks * 512
		return nil
	})
	return total, err
}
