package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// egressFlags are the egress policy flags: --egress-default, and --allow and
// --deny (repeatable, CIDR/address or domain), kept in command-line order.
type egressFlags struct {
	def   string
	rules []boxrun.EgressRule
	set   bool
}

// ruleFlag appends a rule with its action to the shared list.
type ruleFlag struct {
	e      *egressFlags
	action string
}

func (r ruleFlag) String() string { return "" }

func (r ruleFlag) Set(v string) error {
	r.e.set = true
	rule := boxrun.EgressRule{Action: r.action}
	if _, err := netip.ParsePrefix(v); err == nil {
		rule.CIDR = v
	} else if _, err := netip.ParseAddr(v); err == nil {
		rule.CIDR = v
	} else {
		rule.Domain = v
	}
	r.e.rules = append(r.e.rules, rule)
	return nil
}

func (e *egressFlags) register(fs *flag.FlagSet) {
	fs.Func("egress-default", "egress default for a box with --network: allow (default) or deny", func(v string) error {
		e.def, e.set = v, true
		return nil
	})
	fs.Var(ruleFlag{e, boxrun.EgressAllow}, "allow", "allow egress to a CIDR, address or domain (with subdomains); repeatable, first match wins")
	fs.Var(ruleFlag{e, boxrun.EgressDeny}, "deny", "deny egress to a CIDR, address or domain (with subdomains); repeatable, first match wins")
}

// policy is the policy the flags describe (nil when none was given).
func (e *egressFlags) policy() *boxrun.EgressPolicy {
	if !e.set {
		return nil
	}
	return &boxrun.EgressPolicy{Default: e.def, Rules: e.rules}
}

// parsePorts parses Docker-style -p values: BOXPORT, HOSTPORT:BOXPORT or
// HOSTIP:HOSTPORT:BOXPORT (an optional "/tcp" suffix is accepted).
func parsePorts(items []string) ([]boxrun.PortMapping, error) {
	var out []boxrun.PortMapping
	for _, it := range items {
		s := strings.TrimSuffix(it, "/tcp")
		parts := strings.Split(s, ":")
		var p boxrun.PortMapping
		var err error
		num := func(v string) int {
			n, e := strconv.Atoi(v)
			if e != nil {
				err = e
			}
			return n
		}
		switch len(parts) {
		case 1:
			p.BoxPort = num(parts[0])
		case 2:
			p.HostPort, p.BoxPort = num(parts[0]), num(parts[1])
		case 3:
			p.HostIP, p.HostPort, p.BoxPort = parts[0], num(parts[1]), num(parts[2])
		default:
			err = fmt.Errorf("too many colons")
		}
		if err != nil {
			return nil, usagef("invalid port %q (want [HOSTIP:][HOSTPORT:]BOXPORT)", it)
		}
		out = append(out, p)
	}
	return out, nil
}

// newEgressCmd replaces the egress policy of a box.
func newEgressCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("egress")
	var ef egressFlags
	ef.register(fs)
	return &ffcli.Command{
		Name:       "egress",
		ShortUsage: "boxrun egress [--egress-default allow|deny] [--allow X]... [--deny X]... BOX",
		ShortHelp:  "replace the egress policy of a box with network (takes effect at once)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, svc, err := cfg.argsAndService(ctx, fs, args, "egress needs a BOX")
			if err != nil {
				return err
			}
			p := ef.policy()
			if p == nil {
				p = &boxrun.EgressPolicy{}
			}
			info, err := svc.SetBoxEgress(ctx, pos[0], *p)
			if err != nil {
				return err
			}
			return writeJSON(cfg, info)
		},
	}
}
