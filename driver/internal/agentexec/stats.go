package agentexec

import (
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/sandbox"
)

// ApplyStats puts what a box's agent reported (agentproto.OpStats) into s,
// keeping only values that can be true: memory in use within
// s.MemoryLimitBytes (when that is known), a process count a kernel can
// have, a CPU time that is not negative. With hostCPU set, s.CPUTime was
// measured on the host and the agent's is ignored. A box can report
// anything: these figures are for display only.
func ApplyStats(s *sandbox.Stats, st *agentproto.Stats, hostCPU bool) {
	if st == nil {
		return
	}
	if m := st.MemoryBytes; m >= 0 && (s.MemoryLimitBytes < 0 || m <= s.MemoryLimitBytes) {
		s.MemoryBytes = m
	}
	if p := st.Processes; p >= 0 && p <= 1<<22 {
		s.Processes = p
	}
	if ns := st.CPUTimeNS; !hostCPU && ns != nil && *ns >= 0 {
		s.CPUTime = time.Duration(*ns)
	}
}
