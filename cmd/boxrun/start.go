package main

import (
	"context"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newStartCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("start")
	return &ffcli.Command{
		Name:       "start",
		ShortUsage: "boxrun start BOX...",
		ShortHelp:  "start stopped boxes again",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usagef("start needs at least one BOX")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			for _, b := range pos {
				box, err := svc.Start(ctx, b)
				if err != nil {
					return err
				}
				fmt.Fprintf(cfg.stdout, "Started %s\n", box.ID)
			}
			return nil
		},
	}
}
