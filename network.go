package boxrun

import "github.com/boxrun/boxrun/boxapi"

// Networking vocabulary (see boxapi): published ports and egress policy.
type (
	// PortMapping publishes a TCP port of a box on the host.
	PortMapping = boxapi.PortMapping
	// EgressPolicy is what a box with network may reach.
	EgressPolicy = boxapi.EgressPolicy
	// EgressRule allows or denies one CIDR or domain.
	EgressRule = boxapi.EgressRule
	// NetInfo is the network of a box: address, ports, egress policy.
	NetInfo = boxapi.NetInfo
)

// Egress actions (EgressRule.Action, EgressPolicy.Default).
const (
	EgressAllow = boxapi.EgressAllow
	EgressDeny  = boxapi.EgressDeny
)

// ErrPortInUse is wrapped by drivers when a published host port cannot be
// bound: a kind of ErrInvalid (see boxapi.ErrPortInUse).
var ErrPortInUse = boxapi.ErrPortInUse

// ValidatePorts checks and normalizes published ports (see
// boxapi.ValidatePorts).
func ValidatePorts(ports []PortMapping) ([]PortMapping, error) { return boxapi.ValidatePorts(ports) }
