package gvisor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.ExitReasoner = (*Driver)(nil)

// ExitReason tells why the sandbox of handle died on its own: "out of
// memory" when the kernel's OOM killer acted in the box's memory cgroup
// (memory.oom_control on cgroup v1, memory.events on v2, read before the
// cgroup is removed), else "" (the Manager then says "sandbox exited").
func (d *Driver) ExitReason(ctx context.Context, handle string) string {
	if !validHandle(handle) {
		return ""
	}
	for _, p := range []string{
		filepath.Join(cgroupRoot, "memory", cgroupParent, handle, "memory.oom_control"),
		filepath.Join(cgroupRoot, cgroupParent, handle, "memory.events"),
	} {
		if n := oomKills(p); n > 0 {
			return "out of memory"
		}
	}
	return ""
}

// oomKills reads the "oom_kill N" line of a cgroup file (0 when absent).
func oomKills(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
