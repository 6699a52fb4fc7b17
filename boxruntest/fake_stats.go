package boxruntest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Statser = (*FakeDriver)(nil)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat on
// every Linux architecture Go supports.
const clockTicks = 100

// Stats measures a fake sandbox from the host's /proc: the processes whose
// environment carries the box's marker (CPU time of the live ones, RSS,
// count). Peak memory is the current one; disk and network are -1.
func (d *FakeDriver) Stats(ctx context.Context, handle string) (sandbox.Stats, error) {
	out := sandbox.Stats{MemoryPeakBytes: -1, MemoryLimitBytes: -1, DiskBytes: -1, NetRxBytes: -1, NetTxBytes: -1}
	st, err := d.State(ctx, handle)
	if err != nil {
		return out, err
	}
	switch st {
	case sandbox.Missing:
		return out, fmt.Errorf("fake: sandbox %q: %w", handle, boxrun.ErrNotFound)
	case sandbox.Stopped:
		return out, fmt.Errorf("fake: sandbox %q is stopped: %w", handle, boxrun.ErrConflict)
	}
	entry := []byte("\x00" + markerEnv + "=" + handle + "\x00")
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return out, err
	}
	page := int64(os.Getpagesize())
	for _, e := range dirs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), entry) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		// Fields after the command: state(3) ... utime(14) stime(15) ... rss(24).
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 22 || f[0] == "Z" {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		rss, _ := strconv.ParseInt(f[21], 10, 64)
		out.CPUTime += time.Duration(ut+stt) * time.Second / clockTicks
		out.MemoryBytes += rss * page
		out.Processes++
	}
	out.MemoryPeakBytes = out.MemoryBytes
	return out, nil
}
