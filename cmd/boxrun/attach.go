package main

import (
	"context"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newAttachCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("attach")
	shell := fs.String("shell", "/bin/sh", "program to run when no CMD is given")
	workdir := fs.String("workdir", "", "working directory (default: the box's)")
	fs.StringVar(workdir, "w", "", "shorthand for --workdir")
	return &ffcli.Command{
		Name:       "attach",
		ShortUsage: "boxrun attach [flags] BOX [CMD [ARGS...]]",
		ShortHelp:  "open an interactive terminal in a running box; exits with the program's exit code",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) < 1 {
				return usagef("attach needs BOX")
			}
			box, cmd := args[0], args[1:]
			if len(cmd) > 0 && cmd[0] == "--" {
				cmd = cmd[1:]
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			return attachTerminal(ctx, cfg, svc, box, boxrun.AttachRequest{Shell: *shell, Cmd: cmd, Workdir: *workdir})
		},
	}
}
