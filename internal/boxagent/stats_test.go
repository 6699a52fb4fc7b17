//go:build linux

package boxagent

import "testing"

// The busy fields of /proc/stat's cpu line, in nanoseconds; anything that
// is not that line is unknown.
func TestCPUTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 2 30 5000 7 1 2 3 40 0\ncpu0 1 2 3\n", (100 + 2 + 30 + 1 + 2 + 3) * 10_000_000, true},
		{"cpu  5 0 5 100\n", 10 * 10_000_000, true},
		{"cpu0 1 2 3 4\n", 0, false},
		{"cpu  1 x 3 4\n", 0, false},
		{"cpu  1 -2 3 4\n", 0, false},
		{"", 0, false},
	} {
		got, ok := cpuTime([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("cpuTime(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	// This host's own line parses, and time only grows.
	a := Stats()
	if a.CPUTimeNS == nil || *a.CPUTimeNS <= 0 {
		t.Fatalf("Stats on this host: CPU %v", a.CPUTimeNS)
	}
}
