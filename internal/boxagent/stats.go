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
// memory from /proc/meminfo (in use = MemTotal - MemAvailable) and the
// number of processes in /proc. Values it cannot read are -1.
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
