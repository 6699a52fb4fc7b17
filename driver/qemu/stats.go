package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Statser = (*Driver)(nil)

// statsTimeout bounds the agent's answer to a stats request: a VM too busy
// to answer in time reports its memory and processes as unknown (-1).
const statsTimeout = 5 * time.Second

// Stats implements sandbox.Statser. What the host can measure comes from
// the host, where the box cannot falsify it: CPU time is QEMU's (utime +
// stime of its process: vCPUs, emulation under TCG, device I/O), the disk
// is the blocks the box's disk image holds, network bytes are the counters
// of its tap (rx on the tap is what the box sent). Memory in use (guest
// MemTotal - MemAvailable) and the process count come from the guest agent
// (agentproto.OpStats): they are the box's own report, for display only.
// The memory limit is the VM's memory; the peak is unknown (-1).
func (d *Driver) Stats(ctx context.Context, handle string) (sandbox.Stats, error) {
	b, err := d.get(handle)
	if err != nil {
		return sandbox.Stats{}, err
	}
	b.mu.Lock()
	pid, running := b.state.PID, b.running()
	memLimit := b.state.MemoryMB << 20
	var tap string
	if b.state.Net != nil {
		tap = b.state.Net.HostIf
	}
	b.mu.Unlock()
	if !running {
		return sandbox.Stats{}, fmt.Errorf("qemu: sandbox %s is not running: %w", handle, boxapi.ErrConflict)
	}
	s := sandbox.Stats{MemoryBytes: -1, MemoryPeakBytes: -1, MemoryLimitBytes: memLimit, Processes: -1,
		DiskBytes: -1, NetRxBytes: -1, NetTxBytes: -1}
	cpu, err := procCPUTime(pid)
	if err != nil {
		return sandbox.Stats{}, fmt.Errorf("qemu: stats of %s: %w: %w", handle, err, boxapi.ErrConflict)
	}
	s.CPUTime = cpu
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(b.dir, diskFile), &st) == nil {
		s.DiskBytes = st.Blocks * 512
	}
	if tap != "" {
		s.NetRxBytes = readCounter(tap, "tx_bytes") // what the host sent to the box
		s.NetTxBytes = readCounter(tap, "rx_bytes") // what the box sent
	}
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	conn, err := d.agent(sctx, handle)
	if err != nil {
		return s, nil
	}
	res, err := call(sctx, conn, &agentproto.Request{Op: agentproto.OpStats})
	if err != nil || res.Stats == nil {
		d.log.Debug("qemu: agent stats", "handle", handle, "err", err)
		return s, nil
	}
	agentexec.ApplyStats(&s, res.Stats, true)
	return s, nil
}

// procCPUTime is utime + stime of pid, from /proc/<pid>/stat.
func procCPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// After the command: state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// readCounter reads /sys/class/net/<link>/statistics/<name>, or -1.
func readCounter(link, name string) int64 {
	raw, err := os.ReadFile("/sys/class/net/" + link + "/statistics/" + name)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return -1
	}
	return v
}
