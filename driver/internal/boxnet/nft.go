package boxnet

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// protected are the destinations the built-in protection denies in the
// forward path (the host's own addresses are denied in the input path).
var protected = []string{
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
}

// tableName is the nftables table of one box.
func (h *Host) tableName(id string) string { return "boxrun_" + h.tag + "_" + id }

// ruleset returns the nft script that (re)creates the table of box b with
// policy p: run as one transaction, so a box is never half-policed.
func (h *Host) ruleset(b *Box, p Policy, replace bool) string {
	t := h.tableName(b.ID)
	var s strings.Builder
	// "add table" then "delete table" makes the delete valid when the table
	// does not exist yet; the whole script is one atomic transaction.
	if replace {
		fmt.Fprintf(&s, "add table inet %s\ndelete table inet %s\n", t, t)
	}
	fmt.Fprintf(&s, "table inet %s {\n", t)
	s.WriteString("\tset pinned { type ipv4_addr; flags timeout; }\n")
	fmt.Fprintf(&s, "\tchain box_reject { meta l4proto tcp reject with tcp reset; reject with icmpx type admin-prohibited; }\n")
	fmt.Fprintf(&s, "\tchain box_forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&s, "\t\tiifname %q jump box_egress\n", b.HostIf)
	fmt.Fprintf(&s, "\t\toifname %q ct state established,related accept\n", b.HostIf)
	fmt.Fprintf(&s, "\t\toifname %q drop\n\t}\n", b.HostIf)

	// A box may only send from its own address: a VM's kernel (or a raw
	// socket) could forge any source.
	fmt.Fprintf(&s, "\tchain box_egress {\n\t\tct state established,related accept\n\t\tmeta nfproto ipv6 drop\n\t\tip saddr != %s drop\n", b.Addr)
	for i, r := range p.Rules {
		if r.CIDR == "" {
			continue
		}
		if r.Action == Allow {
			fmt.Fprintf(&s, "\t\tip daddr %s accept\n", r.CIDR)
		} else {
			fmt.Fprintf(&s, "\t\tip daddr %s %s jump box_reject\n", r.CIDR, h.logStmt(b.ID, fmt.Sprintf("r%d", i)))
		}
	}
	fmt.Fprintf(&s, "\t\tip daddr { %s, %s } %s jump box_reject\n", strings.Join(protected, ", "), h.pool, h.logStmt(b.ID, "builtin"))
	s.WriteString("\t\tip daddr @pinned accept\n")
	if p.Default == Deny {
		fmt.Fprintf(&s, "\t\t%s jump box_reject\n", h.logStmt(b.ID, "default"))
	}
	s.WriteString("\t}\n")

	fmt.Fprintf(&s, "\tchain box_input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname %q jump box_hostin\n\t}\n", b.HostIf)
	fmt.Fprintf(&s, "\tchain box_hostin {\n\t\tct state established,related accept\n\t\tmeta nfproto ipv6 drop\n\t\tip saddr != %s drop\n", b.Addr)
	fmt.Fprintf(&s, "\t\tip daddr %s udp dport 53 accept\n\t\tip daddr %s tcp dport 53 accept\n", b.Gateway, b.Gateway)
	for i, r := range p.Rules {
		// An explicit allow of a host address opens it; a /0 never opens
		// the host.
		if r.CIDR != "" && r.Action == Allow && !strings.HasSuffix(r.CIDR, "/0") {
			fmt.Fprintf(&s, "\t\tip daddr %s accept\n", r.CIDR)
		} else if r.CIDR != "" && r.Action == Deny {
			fmt.Fprintf(&s, "\t\tip daddr %s %s jump box_reject\n", r.CIDR, h.logStmt(b.ID, fmt.Sprintf("r%d", i)))
		}
	}
	fmt.Fprintf(&s, "\t\t%s jump box_reject\n\t}\n", h.logStmt(b.ID, "host"))

	fmt.Fprintf(&s, "\tchain box_post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&s, "\t\tip saddr %s oifname != %q masquerade\n\t}\n}\n", b.Addr, b.HostIf)
	return s.String()
}

// logStmt logs the packet to the host's NFLOG group with a prefix naming the
// box and the rule ("boxrun <id> <rule>"); the nflog reader turns it into a
// Denial.
func (h *Host) logStmt(id, rule string) string {
	if h.nflog == nil {
		return ""
	}
	return fmt.Sprintf("log prefix %q group %d", "boxrun "+id+" "+rule, h.nflog.group)
}

// applyPolicy installs (or atomically replaces) the table of b.
func (h *Host) applyPolicy(ctx context.Context, b *Box, p Policy) error {
	return h.nft(ctx, h.ruleset(b, p, true))
}

// pin adds addresses to the pinned set of box id for ttl seconds.
func (h *Host) pin(ctx context.Context, id string, addrs []netip.Addr, ttl uint32) error {
	if len(addrs) == 0 {
		return nil
	}
	if ttl < 60 {
		ttl = 60
	}
	var el []string
	for _, a := range addrs {
		el = append(el, fmt.Sprintf("%s timeout %ds", a, ttl))
	}
	return h.nft(ctx, fmt.Sprintf("add element inet %s pinned { %s }\n", h.tableName(id), strings.Join(el, ", ")))
}

// flushPins forgets every pinned address of box id.
func (h *Host) flushPins(ctx context.Context, id string) error {
	return h.nft(ctx, fmt.Sprintf("flush set inet %s pinned\n", h.tableName(id)))
}

// deleteTable removes the table of box id, if any.
func (h *Host) deleteTable(ctx context.Context, id string) error {
	t := h.tableName(id)
	return h.nft(ctx, fmt.Sprintf("add table inet %s\ndelete table inet %s\n", t, t))
}

// tables lists the ids of this Host's box tables.
func (h *Host) tables(ctx context.Context) ([]string, error) {
	out, err := h.run(ctx, "", h.nftPath, "list", "tables", "inet")
	if err != nil {
		return nil, err
	}
	var ids []string
	prefix := "table inet " + h.tableName("")
	for _, line := range strings.Split(string(out), "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (h *Host) nft(ctx context.Context, script string) error {
	_, err := h.run(ctx, script, h.nftPath, "-f", "-")
	return err
}
