package boxnet

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// NewForDriver is New for the sandbox driver called name (the prefix of its
// messages): denials go to the receiver onDenied holds at the time (nil:
// dropped), as sandbox.NetworkDriver.OnNetDenied sets it; cfg.OnDenied is
// replaced. When box networking is unavailable here it logs why (to
// cfg.Logger) and returns a nil Host and the reason, which the driver
// passes to CheckSpec and NetUpError so that networked boxes are refused
// with it.
func NewForDriver(name string, cfg Config, onDenied *atomic.Pointer[func(sandbox.NetDenial)]) (*Host, error) {
	cfg.OnDenied = func(dn Denial) {
		if fn := onDenied.Load(); fn != nil && *fn != nil {
			(*fn)(sandbox.NetDenial{Handle: dn.ID, Destination: dn.Destination, Rule: dn.Rule, Time: dn.Time})
		}
	}
	h, err := New(cfg)
	if err != nil {
		if cfg.Logger != nil {
			cfg.Logger.Warn(name+": box networking unavailable", "err", err)
		}
		return nil, err
	}
	return h, nil
}

// CheckSpec validates the network part of spec for the driver called name,
// whose Host is h (nil: unavailable, for the reason why): ports and egress
// rules need Network, a networked box needs h, and the egress policy (nil:
// the default) and ports pass the boxapi checks. It returns them
// validated; bad input wraps boxapi.ErrInvalid. Nothing is created.
func CheckSpec(name string, h *Host, why error, spec sandbox.Spec) (Policy, []Port, error) {
	if !spec.Network {
		if len(spec.Ports) > 0 || spec.Egress != nil {
			return Policy{}, nil, fmt.Errorf("%s: ports and egress rules need network: %w", name, boxapi.ErrInvalid)
		}
		return Policy{}, nil, nil
	}
	if h == nil {
		return Policy{}, nil, Unavailable(name, why)
	}
	var p boxapi.EgressPolicy
	if spec.Egress != nil {
		p = *spec.Egress
	}
	p, err := p.Validate()
	if err != nil {
		return Policy{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	ports, err := boxapi.ValidatePorts(spec.Ports)
	if err != nil {
		return Policy{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, ports, nil
}

// Unavailable is the error of a networked box asked of the driver called
// name whose networking is unavailable for the reason why (ErrInvalid).
func Unavailable(name string, why error) error {
	return fmt.Errorf("%s: %v: %w", name, why, boxapi.ErrInvalid)
}

// UpError wraps an error of Up or UpTap for the driver called name: a
// published port already taken is boxapi.ErrPortInUse, anything else
// boxapi.ErrRuntime.
func UpError(name string, err error) error {
	if errors.Is(err, ErrPortInUse) {
		return fmt.Errorf("%s: %w: %w", name, err, boxapi.ErrPortInUse)
	}
	return fmt.Errorf("%s: %w: %w", name, err, boxapi.ErrRuntime)
}
