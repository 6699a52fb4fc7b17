// Package boxnet gives each networked box its own network on the host:
// a network namespace, a veth pair to the host with NAT egress, an nftables
// table with the box's egress policy, a DNS resolver that enforces domain
// rules, and published TCP ports. It is shared by the gVisor and QEMU
// drivers; everything it creates is named after the box and its owner, so
// Down and Prune can remove it after a crash.
//
// # Plumbing, and why
//
// Links and addresses are made with iproute2's `ip -batch` and the policy
// with `nft -f` (Debian packages iproute2 and nftables). nft scripts are
// applied as one kernel transaction: a box's table is created or replaced
// whole ("add table; delete table; table {...}" in one script), so a box is
// never half-policed, not even while its rules are replaced. Both tools
// are what an operator uses to look at the result (`ip netns`,
// `nft list table inet boxrun_<tag>_<id>`), their text formats are stable,
// and they need no cgo and no extra Go netlink code to maintain. The cost,
// a few fork/execs per box start (about 10 ms), is small next to starting a
// sandbox. The one piece in Go is the NFLOG reader (a netlink socket) that
// turns logged packets into Denials.
//
// # Per box
//
//   - namespace /run/netns/boxrun-<tag>-<id> (tag: 6 hex of a hash of
//     Config.Owner), with lo and eth0 (<addr>/30, default route via the
//     gateway);
//   - host link bx<id[:13]> with the gateway address; one /30 of
//     Config.Pool per running box, allocated under a host-wide lock;
//   - table inet boxrun_<tag>_<id>: forward, input and postrouting (NAT)
//     chains matching only the box's host link, and a set of pinned
//     addresses;
//   - for a VM (UpTap, the QEMU driver): no namespace; the host link is a
//     persistent tap device bx<id[:13]> with the gateway address, to which
//     the VM's NIC attaches (the guest kernel is the box's network stack);
//     the table is made before the tap, so Prune finds a crash's tap;
//   - a resolver (UDP and TCP port 53 on the gateway) and one TCP proxy
//     per published port, in the calling process; Restore brings them back
//     in a new process.
//
// Global host state: IPv4 forwarding is turned on (as Docker does).
//
// # Policy
//
// See Policy. From the box, in the forward path: replies to connections
// made from the host side pass; then CIDR rules in order; then the
// built-in protections (loopback, 0/8, link-local 169.254/16, multicast,
// reserved, the box pool: other boxes); then pinned addresses; then the
// default. In the input path (anything for the host itself, every host
// address): only the box's resolver and CIDR allow rules (never a /0) pass.
// Nothing new may enter a box through the forward path (other boxes, other
// hosts); the host reaches a box only through its published ports. IPv6
// is dropped, and so is anything a box sends from another source address
// than its own (silently: a forged source is not a destination to report). Denied packets are rejected (TCP reset, ICMP
// admin-prohibited), so a box fails fast, and logged to the Host's NFLOG
// group with the box and rule in the prefix; retries of one flow within
// 10 s are one Denial.
//
// Domain rules are enforced by the resolver: a lookup of a denied name is
// answered REFUSED (one Denial per name within 2 s); the IPv4 addresses an
// allowed domain rule's name resolved to are added to the box's pinned set
// (for the record's TTL, at least 60 s) before the answer goes back, so a
// box may connect only to addresses that an allowed name resolved to for
// it. Replacing the policy empties the pinned set.
package boxnet
