package main

import (
	"context"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newInspectCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("inspect")
	execs := fs.Bool("execs", false, "print the execs of the box instead (newest first)")
	network := fs.Bool("net", false, "print the network of each box instead: address, published ports, egress policy")
	lifetime := fs.Bool("lifetime", false, "print the lifetime of each box instead (ttl, idle timeout, when they fire)")
	runtime := fs.Bool("runtime", false, "print how the driver runs each box instead (gVisor: agent connected, or fallback to runsc exec)")
	return &ffcli.Command{
		Name:       "inspect",
		ShortUsage: "boxrun inspect [flags] BOX...",
		ShortHelp:  "print boxes (or their execs) as a JSON array",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, svc, err := cfg.argsAndService(ctx, fs, args, "inspect needs at least one BOX")
			if err != nil {
				return err
			}
			if *lifetime {
				all := make([]*boxrun.Lifetime, 0, len(pos))
				for _, b := range pos {
					lt, err := svc.Lifetime(ctx, b)
					if err != nil {
						return err
					}
					all = append(all, lt)
				}
				return writeJSON(cfg, all)
			}
			if *runtime {
				all := make([]*boxrun.BoxRuntime, 0, len(pos))
				for _, b := range pos {
					rt, err := svc.BoxRuntime(ctx, b)
					if err != nil {
						return err
					}
					all = append(all, rt)
				}
				return writeJSON(cfg, all)
			}
			if *network {
				all := []*boxrun.NetInfo{}
				for _, b := range pos {
					info, err := svc.BoxNetwork(ctx, b)
					if err != nil {
						return err
					}
					all = append(all, info)
				}
				return writeJSON(cfg, all)
			}
			if *execs {
				all := []*boxrun.Exec{}
				for _, b := range pos {
					es, err := svc.ListExecs(ctx, b)
					if err != nil {
						return err
					}
					all = append(all, es...)
				}
				return writeJSON(cfg, all)
			}
			boxes := make([]*boxrun.Box, 0, len(pos))
			for _, b := range pos {
				box, err := svc.Get(ctx, b)
				if err != nil {
					return err
				}
				boxes = append(boxes, box)
			}
			return writeJSON(cfg, boxes)
		},
	}
}
