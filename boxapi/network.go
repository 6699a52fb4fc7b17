package boxapi

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// PortMapping publishes a TCP port of a box on the host, Docker-style
// (`-p 8080:80`, `-p 80`, `-p 0.0.0.0:8080:80`).
type PortMapping struct {
	// HostIP is the host address to listen on. Default "127.0.0.1" (host
	// loopback only).
	HostIP string `json:"host_ip,omitempty"`
	// HostPort is the host port; 0 picks a free one when the box starts.
	HostPort int `json:"host_port"`
	// BoxPort is the TCP port inside the box (1-65535).
	BoxPort int `json:"box_port"`
}

// Egress actions (EgressRule.Action, EgressPolicy.Default).
const (
	EgressAllow = "allow"
	EgressDeny  = "deny"
)

// EgressPolicy is what a box with network may reach. The zero value allows
// the internet and denies the built-in protected destinations: every host
// address (the box's gateway too, except its DNS resolver), loopback,
// link-local (169.254.0.0/16, cloud metadata), multicast and other boxes.
//
// A new connection is decided by the CIDR rules in order (first match
// wins; an allow rule can open a protected destination), then the built-in
// protections, then the addresses that an allowed domain rule pinned (the
// box resolved the name through its resolver), then Default. A DNS lookup
// is decided by the first domain rule that covers the name (the name or a
// parent domain), then Default; a denied lookup is answered REFUSED.
type EgressPolicy struct {
	// Default is "allow" (the default when empty) or "deny".
	Default string       `json:"default"`
	Rules   []EgressRule `json:"rules"`
}

// EgressRule allows or denies one CIDR ("10.0.0.0/8", or one IPv4 address)
// or one domain with its subdomains ("example.com"). Exactly one of CIDR and
// Domain is set.
type EgressRule struct {
	Action string `json:"action"` // "allow" or "deny"
	CIDR   string `json:"cidr,omitempty"`
	Domain string `json:"domain,omitempty"`
}

// NetInfo is the network of a box: its address while it runs, its
// published ports (host ports as bound) and its egress policy.
type NetInfo struct {
	Network bool          `json:"network"`
	Address string        `json:"address,omitempty"` // the box's IPv4 address, "" when stopped
	Gateway string        `json:"gateway,omitempty"` // host end: router and DNS resolver
	Ports   []PortMapping `json:"ports"`
	Egress  EgressPolicy  `json:"egress"`
}

// ErrPortInUse is wrapped by drivers when a published host port cannot be
// bound; it is a kind of ErrInvalid (VALIDATION_ERROR), and Create then
// leaves no box behind.
var ErrPortInUse = fmt.Errorf("host port in use: %w", ErrInvalid)

// maxEgressRules bounds EgressPolicy.Rules.
const maxEgressRules = 256

// Validate checks p and returns it normalized: Default filled in, CIDRs
// masked ("10.1.2.3/8" is "10.0.0.0/8", an address is "/32"), domains
// lower-case without a trailing dot or a leading "*.". Errors are
// VALIDATION_ERROR with a message naming the rule.
func (p EgressPolicy) Validate() (EgressPolicy, error) {
	out := EgressPolicy{Default: p.Default, Rules: []EgressRule{}}
	if out.Default == "" {
		out.Default = EgressAllow
	}
	if out.Default != EgressAllow && out.Default != EgressDeny {
		return EgressPolicy{}, invalidf("egress default %q: must be allow or deny", p.Default)
	}
	if len(p.Rules) > maxEgressRules {
		return EgressPolicy{}, invalidf("%d egress rules: at most %d", len(p.Rules), maxEgressRules)
	}
	for i, r := range p.Rules {
		if r.Action != EgressAllow && r.Action != EgressDeny {
			return EgressPolicy{}, invalidf("egress rule %d: action %q: must be allow or deny", i+1, r.Action)
		}
		switch {
		case r.CIDR != "" && r.Domain != "":
			return EgressPolicy{}, invalidf("egress rule %d: set cidr or domain, not both", i+1)
		case r.CIDR != "":
			pfx, ok := parseCIDR4(r.CIDR)
			if !ok {
				return EgressPolicy{}, invalidf("egress rule %d: bad cidr %q (want an IPv4 address or CIDR such as 10.0.0.0/8)", i+1, r.CIDR)
			}
			r.CIDR = pfx.String()
		case r.Domain != "":
			d, ok := parseDomain(r.Domain)
			if !ok {
				return EgressPolicy{}, invalidf("egress rule %d: bad domain %q", i+1, r.Domain)
			}
			r.Domain = d
		default:
			return EgressPolicy{}, invalidf("egress rule %d: needs a cidr or a domain", i+1)
		}
		out.Rules = append(out.Rules, r)
	}
	return out, nil
}

func parseCIDR4(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, 32), true
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil || !pfx.Addr().Is4() {
		return netip.Prefix{}, false
	}
	return pfx.Masked(), true
}

func parseDomain(s string) (string, bool) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimPrefix(s, "*.")), ".")
	if d == "" || len(d) > 253 {
		return "", false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return d, true
}

// ValidatePorts checks published ports and returns them normalized (HostIP
// filled in). Errors are VALIDATION_ERROR: a box port outside 1-65535, a
// host port outside 0-65535, a host IP that is not an IPv4 address, the
// same box port twice, or the same host address and port twice.
func ValidatePorts(ports []PortMapping) ([]PortMapping, error) {
	out := []PortMapping{}
	seenBox := map[int]bool{}
	seenHost := map[string]bool{}
	for _, p := range ports {
		if p.HostIP == "" {
			p.HostIP = "127.0.0.1"
		}
		a, err := netip.ParseAddr(p.HostIP)
		if err != nil || !a.Is4() {
			return nil, invalidf("port %d: host ip %q is not an IPv4 address", p.BoxPort, p.HostIP)
		}
		p.HostIP = a.String()
		if p.BoxPort < 1 || p.BoxPort > 65535 {
			return nil, invalidf("box port %d: must be 1-65535", p.BoxPort)
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return nil, invalidf("host port %d: must be 1-65535 (or 0 for a free one)", p.HostPort)
		}
		if seenBox[p.BoxPort] {
			return nil, invalidf("box port %d is published twice", p.BoxPort)
		}
		seenBox[p.BoxPort] = true
		if p.HostPort != 0 {
			k := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
			if seenHost[k] {
				return nil, invalidf("host port %s is used twice", k)
			}
			seenHost[k] = true
		}
		out = append(out, p)
	}
	return out, nil
}

// invalidf is a VALIDATION_ERROR with a formatted message.
func invalidf(format string, a ...any) *Error {
	return &Error{Code: CodeValidationError, Message: fmt.Sprintf(format, a...), Err: ErrInvalid}
}
