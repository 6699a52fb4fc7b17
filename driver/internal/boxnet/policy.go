package boxnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalid is wrapped by every validation error of this package; drivers
// wrap it again with the Manager's ErrInvalid.
var ErrInvalid = errors.New("invalid network setting")

// Actions of a Rule and of Policy.Default.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Policy is the egress policy of one box. The zero value allows the
// internet (Default "" is Allow) with the built-in protections.
//
// A new connection from the box is decided by, in order: the CIDR rules (the
// first whose CIDR holds the destination wins), the built-in protections
// (host addresses, loopback, link-local, multicast, other boxes: denied),
// addresses pinned by a domain rule that allowed a lookup, and Default. A
// DNS lookup is decided by the domain rules (the first whose domain is the
// name or a parent of it wins), then Default.
type Policy struct {
	Default string `json:"default"`
	Rules   []Rule `json:"rules"`
}

// Rule is one egress rule: exactly one of CIDR and Domain is set.
type Rule struct {
	Action string `json:"action"`
	CIDR   string `json:"cidr,omitempty"`
	Domain string `json:"domain,omitempty"`
}

// String is the rule as net.denied events name it: "deny cidr 10.0.0.0/8".
func (r Rule) String() string {
	if r.Domain != "" {
		return r.Action + " domain " + r.Domain
	}
	return r.Action + " cidr " + r.CIDR
}

// MaxRules bounds Policy.Rules.
const MaxRules = 256

// Validate checks p and returns it normalized (Default filled in, CIDRs
// masked, domains lower-case without a trailing dot).
func (p Policy) Validate() (Policy, error) {
	out := Policy{Default: p.Default}
	if out.Default == "" {
		out.Default = Allow
	}
	if out.Default != Allow && out.Default != Deny {
		return Policy{}, fmt.Errorf("egress default %q: must be allow or deny: %w", p.Default, ErrInvalid)
	}
	if len(p.Rules) > MaxRules {
		return Policy{}, fmt.Errorf("%d egress rules: at most %d: %w", len(p.Rules), MaxRules, ErrInvalid)
	}
	for i, r := range p.Rules {
		if r.Action != Allow && r.Action != Deny {
			return Policy{}, fmt.Errorf("egress rule %d: action %q: must be allow or deny: %w", i+1, r.Action, ErrInvalid)
		}
		switch {
		case r.CIDR != "" && r.Domain != "":
			return Policy{}, fmt.Errorf("egress rule %d: set cidr or domain, not both: %w", i+1, ErrInvalid)
		case r.CIDR != "":
			pfx, err := ParseCIDR(r.CIDR)
			if err != nil {
				return Policy{}, fmt.Errorf("egress rule %d: %w", i+1, err)
			}
			r.CIDR = pfx.String()
		case r.Domain != "":
			d, err := ParseDomain(r.Domain)
			if err != nil {
				return Policy{}, fmt.Errorf("egress rule %d: %w", i+1, err)
			}
			r.Domain = d
		default:
			return Policy{}, fmt.Errorf("egress rule %d: needs a cidr or a domain: %w", i+1, ErrInvalid)
		}
		out.Rules = append(out.Rules, r)
	}
	return out, nil
}

// ParseCIDR parses an IPv4 CIDR ("10.0.0.0/8") or a single IPv4 address
// (taken as /32) and returns it masked. Boxes are IPv4-only.
func ParseCIDR(s string) (netip.Prefix, error) {
	var pfx netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		pfx, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(s)
		if err == nil {
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad cidr %q: %w", s, ErrInvalid)
	}
	if !pfx.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("cidr %q: only IPv4 is supported: %w", s, ErrInvalid)
	}
	return pfx.Masked(), nil
}

// ParseDomain checks a domain name of a rule ("example.com", "a.b.test";
// a leading "*." is accepted and dropped: a rule always covers subdomains)
// and returns it lower-case without a trailing dot.
func ParseDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimPrefix(s, "*.")), ".")
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("bad domain %q: %w", s, ErrInvalid)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("bad domain %q: %w", s, ErrInvalid)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("bad domain %q: %w", s, ErrInvalid)
			}
		}
	}
	return d, nil
}

// matchDomain returns the index of the first domain rule that covers name
// (lower-case, no trailing dot), or -1.
func (p Policy) matchDomain(name string) int {
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

// Port publishes a TCP port of a box on the host, Docker-style.
type Port struct {
	// HostIP is the host address to listen on. Default 127.0.0.1.
	HostIP string `json:"host_ip"`
	// HostPort is the host port; 0 picks a free one (filled in by Setup).
	HostPort int `json:"host_port"`
	// BoxPort is the port in the box (1-65535).
	BoxPort int `json:"box_port"`
}

// ValidatePorts checks ports and returns them normalized (HostIP filled in).
// Duplicates (the same box port twice, or the same host address and port
// twice) are errors.
func ValidatePorts(ports []Port) ([]Port, error) {
	var out []Port
	seenBox := map[int]bool{}
	seenHost := map[string]bool{}
	for _, p := range ports {
		if p.HostIP == "" {
			p.HostIP = "127.0.0.1"
		}
		a, err := netip.ParseAddr(p.HostIP)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("port %d: host ip %q is not an IPv4 address: %w", p.BoxPort, p.HostIP, ErrInvalid)
		}
		p.HostIP = a.String()
		if p.BoxPort < 1 || p.BoxPort > 65535 {
			return nil, fmt.Errorf("box port %d: must be 1-65535: %w", p.BoxPort, ErrInvalid)
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return nil, fmt.Errorf("host port %d: must be 1-65535 (or 0 for any): %w", p.HostPort, ErrInvalid)
		}
		if seenBox[p.BoxPort] {
			return nil, fmt.Errorf("box port %d published twice: %w", p.BoxPort, ErrInvalid)
		}
		seenBox[p.BoxPort] = true
		if p.HostPort != 0 {
			k := fmt.Sprintf("%s:%d", p.HostIP, p.HostPort)
			if seenHost[k] {
				return nil, fmt.Errorf("host port %s used twice: %w", k, ErrInvalid)
			}
			seenHost[k] = true
		}
		out = append(out, p)
	}
	return out, nil
}
