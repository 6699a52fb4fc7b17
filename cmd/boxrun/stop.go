package main

import (
	"context"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newStopCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("stop")
	return &ffcli.Command{
		Name:       "stop",
		ShortUsage: "boxrun stop BOX...",
		ShortHelp:  "stop running boxes, keeping their files",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usagef("stop needs at least one BOX")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			for _, b := range pos {
				box, err := svc.Stop(ctx, b)
				if err != nil {
					return err
				}
				fmt.Fprintf(cfg.stdout, "Stopped %s\n", box.ID)
			}
			return nil
		},
	}
}
