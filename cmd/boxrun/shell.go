package main

import (
	"context"
	"fmt"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newShellCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("shell")
	var bf boxFlags
	bf.register(fs, true, true)
	shell := fs.String("shell", "/bin/sh", "shell to run")
	rm := fs.Bool("rm", false, "remove the box when the shell exits")
	return &ffcli.Command{
		Name:       "shell",
		ShortUsage: "boxrun shell [flags] [IMAGE]",
		ShortHelp:  "create a box and open a shell in it (IMAGE default: default = ubuntu:24.04)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			svc, box, err := createFromArgs(ctx, cfg, fs, &bf, "shell", args)
			if err != nil {
				return err
			}
			label := box.ID
			if box.Name != "" {
				label = box.Name
			}
			fmt.Fprintf(cfg.stderr, "Created box %s\n", label)
			err = attachTerminal(ctx, cfg, svc, box.ID, boxrun.AttachRequest{Shell: *shell})
			if *rm {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				if rerr := svc.Remove(rctx, box.ID, true); rerr != nil && err == nil {
					err = rerr
				}
			}
			return err
		},
	}
}
