package boxnet

import (
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// ErrInvalid is wrapped by the configuration errors of New. Policies and
// ports are checked by boxapi (EgressPolicy.Validate, ValidatePorts): one
// implementation for the Manager, the API and both drivers.
var ErrInvalid = boxapi.ErrInvalid

// Actions of a Rule and of Policy.Default.
const (
	Allow = boxapi.EgressAllow
	Deny  = boxapi.EgressDeny
)

// Policy is the egress policy of one box (see boxapi.EgressPolicy for the
// order in which it decides). Up, Restore and SetPolicy take it validated
// by its Validate method.
type Policy = boxapi.EgressPolicy

// Rule is one egress rule: exactly one of CIDR and Domain is set.
type Rule = boxapi.EgressRule

// Port publishes a TCP port of a box on the host, Docker-style; Up takes
// them validated by boxapi.ValidatePorts and fills in HostPort 0.
type Port = boxapi.PortMapping

// ruleName is a rule as net.denied events name it: "deny cidr 10.0.0.0/8".
func ruleName(r Rule) string {
	if r.Domain != "" {
		return r.Action + " domain " + r.Domain
	}
	return r.Action + " cidr " + r.CIDR
}

// matchDomain returns the index of the first domain rule of p that covers
// name (lower-case, no trailing dot), or -1.
func matchDomain(p Policy, name string) int {
	for i, r := range p.Rules {
		if r.Domain == "" {
			continue
		}
		if name == r.Domain || strings.HasSuffix(name, "."+r.Domain) {
			return i
		}
	}
	return -1
}
