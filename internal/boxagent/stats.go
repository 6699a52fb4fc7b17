//go:build linux

package boxagent

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"github.com/boxrun/boxrun/agentproto"
)

// Stats is the box's own view of its resource use (agentproto.OpStats):
// memory from /proc/meminfo (in use = MemTotal - MemAvailable), the
// number of processes in /proc and the CPU time of /proc/stat. Values it
// cannot read are -1 (CPU: nil).
func Stats() agentproto.Stats {
	s := agentproto.Stats{MemoryBytes: -1, MemoryTotalBytes: -1, Processes: -1}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		total, avail := meminfo(b, "MemTotal:"), meminfo(b, "MemAvailable:")
		if total >= 0 {
			s.MemoryTotalBytes = total
			if avail >= 0 {
				s.MemoryBytes = total - avail
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if ns, ok := cpuTime(b); ok {
			s.CPUTimeNS = &ns
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		s.Processes = 0
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
				s.Processes++
			}
		}
	}
	return s
}

// meminfo returns the value of key ("MemTotal:") in bytes, or -1.
func meminfo(b []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == key {
			v, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return -1
			}
			if len(f) >= 3 && string(f[2]) == "kB" {
				v <<= 10
			}
			return v
		}
	}
	return -1
}

// clockTicks is USER_HZ, the unit of /proc/stat (100 on every Linux ABI
// this agent runs on, gVisor's included).
const clockTicks = 100

// cpuTime sums the busy fields of /proc/stat's aggregate cpu line (user,
// nice, system, irq, softirq, steal; not idle or iowait) in nanoseconds.
func cpuTime(b []byte) (int64, bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 4 || string(f[0]) != "cpu" {
		return 0, false
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are in user already
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		ticks += n
	}
	return ticks * (1e9 / clockTicks), true
}
