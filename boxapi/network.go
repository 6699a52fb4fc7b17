package boxapi

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
