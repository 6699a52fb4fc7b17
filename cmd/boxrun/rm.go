package main

import (
	"context"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newRmCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("rm")
	force := fs.Bool("force", false, "remove running boxes too")
	fs.BoolVar(force, "f", false, "shorthand for --force")
	return &ffcli.Command{
		Name:       "rm",
		ShortUsage: "boxrun rm [-f] BOX...",
		ShortHelp:  "remove boxes and their execs",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usagef("rm needs at least one BOX")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			for _, b := range pos {
				if err := svc.Remove(ctx, b, *force); err != nil {
					return err
				}
				fmt.Fprintf(cfg.stdout, "Removed %s\n", b)
			}
			return nil
		},
	}
}
