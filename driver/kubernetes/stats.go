package kubernetes

import (
	"context"
	"fmt"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.Statser = (*Driver)(nil)

// statsTimeout bounds the agent's answer to a stats request.
const statsTimeout = 5 * time.Second

// Stats reports what the box's agent sees from inside its pod (gVisor's
// kernel): CPU time, memory in use and processes; the limit is the pod's.
// The node's own figures (cgroups, metrics API) are not reachable through
// the pods API this driver is limited to, so these are the box's view and
// for display only: a box can lie about them, and they are clamped to what
// can be true. Disk, network and the memory peak are unknown (-1).
func (d *Driver) Stats(ctx context.Context, h string) (sandbox.Stats, error) {
	if err := d.checkOpen(); err != nil {
		return sandbox.Stats{}, err
	}
	c, m, err := d.session(ctx, h)
	if err != nil {
		return sandbox.Stats{}, err
	}
	limit := int64(-1)
	if m.MemoryMB > 0 {
		limit = m.MemoryMB << 20
	}
	s := sandbox.Stats{MemoryBytes: -1, MemoryPeakBytes: -1, MemoryLimitBytes: limit, Processes: -1,
		DiskBytes: -1, NetRxBytes: -1, NetTxBytes: -1}
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	res, err := c.Call(sctx, &agentproto.Request{Op: agentproto.OpStats})
	if err != nil {
		return sandbox.Stats{}, fmt.Errorf("kubernetes: stats of %s: %w: %w", h, err, boxapi.ErrRuntime)
	}
	agentexec.ApplyStats(&s, res.Stats, false)
	return s, nil
}
