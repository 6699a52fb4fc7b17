package boxrun

import (
	"context"

	"github.com/boxrun/boxrun/sandbox"
)

// BoxRuntime reports how the driver runs a box right now (extension
// endpoint GET /v1/boxes/{id}/runtime): for gVisor, whether execs go
// through the box's agent ("agent": "connected") or fall back to `runsc
// exec` ("fallback", with "agent_error"). A stopped box, or a driver that
// reports nothing per box, has empty Details. Errors: BOX_NOT_FOUND.
func (m *Manager) BoxRuntime(ctx context.Context, box string) (*BoxRuntime, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	rt := &BoxRuntime{BoxID: b.ID, Driver: m.driver.Name(), Details: map[string]string{}}
	if d, ok := m.driver.(sandbox.BoxDescriber); ok && b.Handle != "" && b.Status == StatusRunning {
		for k, v := range d.DescribeBox(ctx, b.Handle) {
			rt.Details[k] = v
		}
	}
	return rt, nil
}
