package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newRunCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("run")
	var bf boxFlags
	bf.register(fs, true, true)
	rm := fs.Bool("rm", true, "ephemeral: run in a fresh box that is removed afterwards (POST /v1/run; output is collected, then printed); --rm=false keeps the box and streams the output")
	timeout := fs.Int64("timeout", 0, "kill the command after this many seconds (0: none)")
	fs.Int64Var(timeout, "t", 0, "shorthand for --timeout")
	return &ffcli.Command{
		Name:       "run",
		ShortUsage: "boxrun run [flags] IMAGE CMD [ARGS...]",
		ShortHelp:  "run one command in a new box; exits with its exit code",
		LongHelp:   "Flags go before IMAGE; everything after IMAGE is the command.",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) < 2 {
				return usagef("run needs IMAGE and CMD")
			}
			image, cmd := args[0], args[1:]
			if cmd[0] == "--" {
				cmd = cmd[1:]
			}
			if len(cmd) == 0 {
				return usagef("run needs CMD")
			}
			spec, err := bf.spec(image)
			if err != nil {
				return err
			}
			if *rm && (spec.Name != "" || spec.Workdir != "") {
				return usagef("--name and --workdir need --rm=false")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			if !*rm {
				box, err := svc.Create(ctx, spec)
				if err != nil {
					return err
				}
				fmt.Fprintf(cfg.stderr, "Created box %s\n", box.ID)
				e, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: cmd, TimeoutMS: *timeout * 1000}, cfg.stdout, cfg.stderr)
				if err != nil {
					return err
				}
				return execOutcome(cfg, e)
			}
			res, err := svc.Run(ctx, boxrun.RunRequest{
				Image: spec.Image, Cmd: cmd, CPU: spec.CPU, MemoryMB: spec.MemoryMB, DiskSizeGB: spec.DiskSizeGB,
				Network: spec.Network, Env: spec.Env, Volumes: spec.Volumes, TimeoutMS: *timeout * 1000,
			})
			if err != nil {
				return err
			}
			_, _ = io.WriteString(cfg.stdout, res.Stdout)
			_, _ = io.WriteString(cfg.stderr, res.Stderr)
			if res.ErrorMessage != nil && *res.ErrorMessage != "" {
				fmt.Fprintln(cfg.stderr, cfg.dim("boxrun: "+*res.ErrorMessage))
			}
			if res.ExitCode == nil {
				if res.ErrorMessage != nil {
					return errors.New(*res.ErrorMessage)
				}
				return nil // spec: a null exit code counts as 0
			}
			if *res.ExitCode != 0 {
				return &ExitError{Code: *res.ExitCode}
			}
			return nil
		},
	}
}
