package gvisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/boxnet"
	"github.com/boxrun/boxrun/sandbox"
)

var _ sandbox.NetworkDriver = (*Driver)(nil)

// netFields is what boxMeta keeps about a networked box (embedded).
type netFields struct {
	// Egress and Ports are the box's policy and requested ports.
	Egress boxnet.Policy `json:"egress"`
	Ports  []boxnet.Port `json:"ports,omitempty"`
	// Net is the network of the running sandbox (nil when stopped).
	Net *boxnet.Box `json:"net,omitempty"`
}

// newNet starts box networking as root. Without it (rootless, or no
// iproute2/nftables) networked boxes are refused; the reason is kept.
func (d *Driver) newNet(cfg Config) {
	if d.userns != nil {
		d.netErr = errors.New("networked boxes need root (rootless mode has no per-box network)")
		return
	}
	d.net, d.netErr = boxnet.NewForDriver("gvisor", boxnet.Config{Owner: d.dir, Pool: cfg.NetPool, DNS: cfg.DNS, Logger: d.log}, &d.onDenied)
}

// OnNetDenied sets the receiver of net.denied reports.
func (d *Driver) OnNetDenied(fn func(sandbox.NetDenial)) { d.onDenied.Store(&fn) }

// netSpec validates and converts the network part of a SandboxSpec.
func (d *Driver) netSpec(spec sandbox.Spec, m *boxMeta) error {
	p, ports, err := boxnet.CheckSpec("gvisor", d.net, d.netErr, spec)
	if err != nil {
		return err
	}
	if spec.Network {
		m.Egress, m.Ports = p, ports
	}
	return nil
}

// fromPolicy is p as reported (Rules never nil).
func fromPolicy(p boxnet.Policy) boxapi.EgressPolicy {
	out := boxapi.EgressPolicy{Default: p.Default, Rules: []boxapi.EgressRule{}}
	out.Rules = append(out.Rules, p.Rules...)
	return out
}

func (d *Driver) resolvConf(h string) string { return filepath.Join(d.boxDir(h), "resolv.conf") }

// netUp creates the network of a starting networked box and records it in
// its meta; its resolv.conf names the box's resolver.
func (d *Driver) netUp(ctx context.Context, h string, m *boxMeta) error {
	if d.net == nil {
		return boxnet.Unavailable("gvisor", d.netErr)
	}
	b, err := d.net.Up(ctx, h, m.Egress, m.Ports)
	if err != nil {
		return boxnet.UpError("gvisor", err)
	}
	m.Net = b
	if err := os.WriteFile(d.resolvConf(h), []byte("nameserver "+b.Gateway.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	return d.saveMeta(h, m)
}

// netDown removes the network of h (whatever a crash left, too).
func (d *Driver) netDown(ctx context.Context, h string, m *boxMeta) error {
	if d.net == nil {
		return nil
	}
	if m != nil && !m.Network {
		return nil
	}
	err := d.net.Down(ctx, h)
	if m != nil && m.Net != nil {
		m.Net = nil
		if d.exists(h) {
			err = errors.Join(err, d.saveMeta(h, m))
		}
	}
	return err
}

func (d *Driver) saveMeta(h string, m *boxMeta) error {
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileAtomic(d.metaPath(h), mb); err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	return nil
}

// restoreNet gives the running networked boxes of a new Driver their
// policy, resolver and published ports back.
func (d *Driver) restoreNet(ctx context.Context) {
	if d.net == nil {
		return
	}
	ents, err := os.ReadDir(d.boxesDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		h := e.Name()
		if !validHandle(h) {
			continue
		}
		m, err := d.readMeta(h)
		if err != nil || m.Net == nil || !d.running(h) {
			continue
		}
		if err := d.net.Restore(ctx, m.Net); err != nil {
			d.log.Warn("gvisor: restore box network", "handle", h, "err", err)
		}
	}
}

// SetEgress replaces the egress policy of a box; on a running box at once.
func (d *Driver) SetEgress(ctx context.Context, handle string, e boxapi.EgressPolicy) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if !d.exists(handle) {
		return notFound(handle)
	}
	p, err := e.Validate()
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	defer d.lock(handle)()
	m, err := d.readMeta(handle)
	if err != nil {
		return fmt.Errorf("gvisor: %w", err)
	}
	if !m.Network {
		return fmt.Errorf("gvisor: box has no network: %w", boxapi.ErrInvalid)
	}
	if m.Net != nil && d.running(handle) {
		if err := d.net.SetPolicy(ctx, m.Net, p); err != nil {
			return fmt.Errorf("gvisor: %w: %w", err, boxapi.ErrRuntime)
		}
	}
	m.Egress = p
	return d.saveMeta(handle, m)
}

// NetInfo reports the network of a box.
func (d *Driver) NetInfo(ctx context.Context, handle string) (boxapi.NetInfo, error) {
	if !d.exists(handle) {
		return boxapi.NetInfo{}, notFound(handle)
	}
	m, err := d.readMeta(handle)
	if err != nil {
		return boxapi.NetInfo{}, fmt.Errorf("gvisor: %w", err)
	}
	info := boxapi.NetInfo{Network: m.Network, Egress: fromPolicy(m.Egress), Ports: []boxapi.PortMapping{}}
	ports := m.Ports
	if m.Net != nil && d.running(handle) {
		info.Address, info.Gateway = m.Net.Addr.String(), m.Net.Gateway.String()
		ports = m.Net.Ports
	}
	info.Ports = append(info.Ports, ports...)
	return info, nil
}
