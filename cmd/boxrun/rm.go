package main

import (
	"context"
	"fmt"

	"github.com/boxrun/boxrun/client"
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
		Exec: forEachBox(cfg, fs, "rm", func(ctx context.Context, svc *client.Client, b string) error {
			if err := svc.Remove(ctx, b, *force); err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Removed %s\n", b)
			return nil
		}),
	}
}
