package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/boxnet"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.NetworkDriver = (*Driver)(nil)

// netFields is what box.json keeps about a networked box (embedded in
// boxState).
type netFields struct {
	Network bool `json:"network,omitempty"`
	// Egress and Ports are the box's policy and requested ports.
	Egress boxnet.Policy `json:"egress"`
	Ports  []boxnet.Port `json:"ports,omitempty"`
	Net    *boxnet.Box   `json:"net,omitempty"` // the network of the running VM, nil when stopped
}

// newNet starts box networking (root only). Without it networked boxes
// are refused with the reason.
func (d *Driver) newNet(cfg Config) {
	d.net, d.netErr = boxnet.NewForDriver("qemu", boxnet.Config{Owner: d.dir, Pool: cfg.NetPool, DNS: cfg.DNS, Logger: d.log}, &d.onDenied)
}

// OnNetDenied implements sandbox.NetworkDriver.
func (d *Driver) OnNetDenied(fn func(sandbox.NetDenial)) { d.onDenied.Store(&fn) }

// netSpec validates the network part of spec (with the boxapi checks) into
// st. Nothing is created.
func (d *Driver) netSpec(spec sandbox.Spec, st *boxState) error {
	p, ports, err := boxnet.CheckSpec("qemu", d.net, d.netErr, spec)
	if err != nil {
		return err
	}
	if spec.Network {
		st.Network, st.Egress, st.Ports = true, p, ports
	}
	return nil
}

// netUp creates the network of a booting networked box (its tap, table,
// resolver and ports) and records it. A network a crash left is removed
// first. Callers hold b.mu.
func (d *Driver) netUp(ctx context.Context, b *box) error {
	if !b.state.Network {
		return nil
	}
	if d.net == nil {
		return boxnet.Unavailable("qemu", d.netErr)
	}
	if err := d.net.Down(ctx, b.handle); err != nil {
		return fmt.Errorf("qemu: %w: %w", err, boxapi.ErrRuntime)
	}
	n, err := d.net.UpTap(ctx, b.handle, b.state.Egress, b.state.Ports)
	if err != nil {
		return boxnet.UpError("qemu", err)
	}
	b.state.Net = n
	return b.save()
}

// netDown removes the network of a box (whatever a crash left, too).
// Callers hold b.mu (or own b).
func (d *Driver) netDown(ctx context.Context, b *box) error {
	if d.net == nil || !b.state.Network {
		return nil
	}
	err := d.net.Down(context.WithoutCancel(ctx), b.handle)
	if b.state.Net != nil {
		b.state.Net = nil
		if _, serr := os.Stat(filepath.Join(b.dir, stateFile)); serr == nil {
			err = errors.Join(err, b.save())
		}
	}
	return err
}

// netSetup is the network part of the agent's setup.
func netSetup(b *box) *agentproto.NetSetup {
	if b.state.Net == nil {
		return nil
	}
	return &agentproto.NetSetup{Address: b.state.Net.Addr.String() + "/30", Gateway: b.state.Net.Gateway.String()}
}

// netArgs are QEMU's options for the NIC of a networked box: a virtio-net
// device on the box's tap; a template VM (no Net yet) gets a hub port that
// goes nowhere, so its snapshot has the same device.
func netArgs(st *boxState) []string {
	if !st.Network {
		return nil
	}
	backend := "hubport,id=net0,hubid=0"
	if st.Net != nil {
		backend = "tap,id=net0,ifname=" + st.Net.HostIf + ",script=no,downscript=no"
	}
	return []string{"-netdev", backend, "-device", "virtio-net-device,netdev=net0"}
}

// restoreNet gives the running networked boxes of a new Driver their
// policy, resolver and published ports back (after a restart of the host
// process).
func (d *Driver) restoreNet(ctx context.Context) {
	if d.net == nil {
		return
	}
	ents, err := os.ReadDir(filepath.Join(d.dir, "boxes"))
	if err != nil {
		return
	}
	for _, e := range ents {
		b, err := d.get(e.Name())
		if err != nil {
			continue
		}
		b.mu.Lock()
		if b.state.Net != nil && b.running() {
			if err := d.net.Restore(ctx, b.state.Net); err != nil {
				d.log.Warn("qemu: restore box network", "handle", b.handle, "err", err)
			}
		}
		b.mu.Unlock()
	}
}

// SetEgress implements sandbox.NetworkDriver: it replaces the egress
// policy of a box; on a running box at once.
func (d *Driver) SetEgress(ctx context.Context, handle string, e boxapi.EgressPolicy) error {
	p, err := e.Validate()
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	b, err := d.get(handle)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.state.Network {
		return fmt.Errorf("qemu: box has no network: %w", boxapi.ErrInvalid)
	}
	if b.state.Net != nil && b.running() {
		if err := d.net.SetPolicy(ctx, b.state.Net, p); err != nil {
			return fmt.Errorf("qemu: %w: %w", err, boxapi.ErrRuntime)
		}
	}
	b.state.Egress = p
	return b.save()
}

// NetInfo implements sandbox.NetworkDriver.
func (d *Driver) NetInfo(ctx context.Context, handle string) (boxapi.NetInfo, error) {
	b, err := d.get(handle)
	if err != nil {
		return boxapi.NetInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	info := boxapi.NetInfo{Network: b.state.Network, Egress: b.state.Egress, Ports: []boxapi.PortMapping{}}
	if info.Egress.Default == "" {
		info.Egress.Default = boxapi.EgressAllow
	}
	info.Egress.Rules = append([]boxapi.EgressRule{}, b.state.Egress.Rules...)
	ports := b.state.Ports
	if b.state.Net != nil && b.running() {
		info.Address, info.Gateway = b.state.Net.Addr.String(), b.state.Net.Gateway.String()
		ports = b.state.Net.Ports
	}
	info.Ports = append(info.Ports, ports...)
	return info, nil
}
