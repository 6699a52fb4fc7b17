package agentexec_test

import (
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

// What a box's agent reports is kept only where it can be true.
func TestApplyStats(t *testing.T) {
	ns := func(v int64) *int64 { return &v }
	unknown := sandbox.Stats{MemoryBytes: -1, MemoryLimitBytes: 256 << 20, Processes: -1, CPUTime: 7}
	for _, tc := range []struct {
		name    string
		st      *agentproto.Stats
		hostCPU bool
		want    sandbox.Stats
	}{
		{"none", nil, false, unknown},
		{"plausible", &agentproto.Stats{MemoryBytes: 10 << 20, Processes: 3, CPUTimeNS: ns(5e9)}, false,
			sandbox.Stats{MemoryBytes: 10 << 20, MemoryLimitBytes: 256 << 20, Processes: 3, CPUTime: 5 * time.Second}},
		{"host measures CPU", &agentproto.Stats{MemoryBytes: 1, Processes: 1, CPUTimeNS: ns(5e9)}, true,
			sandbox.Stats{MemoryBytes: 1, MemoryLimitBytes: 256 << 20, Processes: 1, CPUTime: 7}},
		{"lies", &agentproto.Stats{MemoryBytes: 1 << 40, Processes: 1 << 40, CPUTimeNS: ns(-1)}, false, unknown},
		{"negative", &agentproto.Stats{MemoryBytes: -5, Processes: -2}, false, unknown},
	} {
		s := unknown
		agentexec.ApplyStats(&s, tc.st, tc.hostCPU)
		if s != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, s, tc.want)
		}
	}
}
