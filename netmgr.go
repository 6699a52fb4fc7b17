package boxrun

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// EventNetDenied is a live-only event (Seq 0): a box's connection or DNS
// lookup was denied by its egress policy (see boxapi.EventNetDenied).
const EventNetDenied = boxapi.EventNetDenied

// NetDenied is the payload of a net.denied event.
type NetDenied = boxapi.NetDenied

// netState maps sandbox handles to box IDs for net.denied events.
type netState struct {
	mu      sync.Mutex
	handles map[string]string
}

// validateNetwork checks the network part of spec (ports and egress need
// network and a driver that implements NetworkDriver) and normalizes it.
func (m *Manager) validateNetwork(spec *BoxSpec) error {
	if len(spec.Ports) == 0 && spec.Egress == nil {
		return nil
	}
	if !spec.Network {
		return invalid("ports and egress rules need network: true")
	}
	if _, ok := m.driver.(sandbox.NetworkDriver); !ok {
		return invalid(fmt.Sprintf("the %s driver does not support ports or egress rules", m.driver.Name()))
	}
	ports, err := ValidatePorts(spec.Ports)
	if err != nil {
		return err
	}
	spec.Ports = ports
	if spec.Egress != nil {
		p, err := spec.Egress.Validate()
		if err != nil {
			return err
		}
		spec.Egress = &p
	}
	return nil
}

// watchNet subscribes to the driver's denials, when it has networking.
func (m *Manager) watchNet() {
	nd, ok := m.driver.(sandbox.NetworkDriver)
	if !ok {
		return
	}
	nd.OnNetDenied(func(d sandbox.NetDenial) {
		id := m.boxOfHandle(d.Handle)
		if id == "" {
			return
		}
		m.bus.publish(Event{Time: d.Time.UTC(), Type: EventNetDenied, BoxID: id,
			Net: &NetDenied{Destination: d.Destination, Rule: d.Rule}})
	})
}

// boxOfHandle returns the ID of the box whose sandbox is handle ("" when
// none).
func (m *Manager) boxOfHandle(handle string) string {
	m.net.mu.Lock()
	id, ok := m.net.handles[handle]
	m.net.mu.Unlock()
	if ok {
		return id
	}
	boxes, err := m.store.listBoxes(m.ctx, "")
	if err != nil {
		return ""
	}
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	if m.net.handles == nil {
		m.net.handles = map[string]string{}
	}
	for _, b := range boxes {
		if b.Handle != "" {
			m.net.handles[b.Handle] = b.ID
		}
	}
	return m.net.handles[handle]
}

// BoxNetwork reports the network of a box: its address while it runs, its
// published ports and its egress policy (extension endpoint GET
// /v1/boxes/{id}/network). A box without network reports Network false.
func (m *Manager) BoxNetwork(ctx context.Context, box string) (*NetInfo, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	info := &NetInfo{Network: b.Network, Ports: []PortMapping{}, Egress: EgressPolicy{Default: EgressAllow, Rules: []EgressRule{}}}
	nd, ok := m.driver.(sandbox.NetworkDriver)
	if !ok || b.Handle == "" || !b.Network {
		return info, nil
	}
	ni, err := nd.NetInfo(ctx, b.Handle)
	if errors.Is(err, ErrNotFound) {
		return info, nil
	}
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "network of box %s: %w", b.ID, err)
	}
	return &ni, nil
}

// SetBoxEgress replaces the egress policy of a box with network; on a
// running box it takes effect at once (extension endpoint PUT
// /v1/boxes/{id}/network/egress). Errors: BOX_NOT_FOUND, VALIDATION_ERROR
// (bad policy, box without network, driver without networking).
func (m *Manager) SetBoxEgress(ctx context.Context, box string, p EgressPolicy) (*NetInfo, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	p, err := p.Validate()
	if err != nil {
		return nil, err
	}
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, err
	}
	defer unlock()
	nd, ok := m.driver.(sandbox.NetworkDriver)
	switch {
	case !b.Network:
		return nil, invalid("box has no network")
	case !ok:
		return nil, invalid(fmt.Sprintf("the %s driver does not support egress rules", m.driver.Name()))
	case b.Handle == "":
		return nil, invalid("box has no sandbox")
	}
	if err := nd.SetEgress(m.ctx, b.Handle, p); err != nil {
		if errors.Is(err, ErrInvalid) {
			return nil, &Error{Code: CodeValidationError, Message: err.Error(), Err: err}
		}
		return nil, Errorf(CodeRuntimeError, "set egress of box %s: %w", b.ID, err)
	}
	ni, err := nd.NetInfo(ctx, b.Handle)
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "network of box %s: %w", b.ID, err)
	}
	return &ni, nil
}
