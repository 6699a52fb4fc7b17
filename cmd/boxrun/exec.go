package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newExecCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("exec")
	detach := fs.Bool("detach", false, "start the command and print its exec ID")
	fs.BoolVar(detach, "d", false, "shorthand for --detach")
	timeout := fs.Int64("timeout", 0, "kill the command after this many seconds (0: none)")
	fs.Int64Var(timeout, "t", 0, "shorthand for --timeout")
	var env stringList
	fs.Var(&env, "env", "environment variable K=V (repeatable)")
	fs.Var(&env, "e", "shorthand for --env")
	workdir := fs.String("workdir", "", "working directory (default: the box's)")
	fs.StringVar(workdir, "w", "", "shorthand for --workdir")
	interactive := fs.Bool("interactive", false, "run on a terminal, interactively (like attach)")
	fs.BoolVar(interactive, "i", false, "shorthand for --interactive")
	tty := fs.Bool("tty", false, "same as --interactive")
	return &ffcli.Command{
		Name:       "exec",
		ShortUsage: "boxrun exec [flags] BOX CMD [ARGS...]",
		ShortHelp:  "run a command in a box, streaming its output; exits with its exit code",
		LongHelp: "Flags go before BOX; everything after BOX is the command.\n" +
			"Note: -t is --timeout (as in the original BoxRun CLI); use -i/--tty for a terminal.",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) < 2 {
				return usagef("exec needs BOX and CMD")
			}
			box, cmd := args[0], args[1:]
			if cmd[0] == "--" {
				cmd = cmd[1:]
			}
			if len(cmd) == 0 {
				return usagef("exec needs CMD")
			}
			envMap, err := parseEnv(env)
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			if *interactive || *tty {
				if *detach || *timeout != 0 {
					return usagef("--detach and --timeout do not apply to an interactive exec")
				}
				if len(envMap) > 0 { // the terminal protocol has no env: use env(1)
					pre := []string{"env"}
					for _, k := range sortedKeys(envMap) {
						pre = append(pre, k+"="+envMap[k])
					}
					cmd = append(pre, cmd...)
				}
				return attachTerminal(ctx, cfg, svc, box, boxrun.AttachRequest{Cmd: cmd, Workdir: *workdir})
			}
			req := boxrun.ExecRequest{Cmd: cmd, Env: envMap, Workdir: *workdir, TimeoutMS: *timeout * 1000}
			if *detach {
				e, err := svc.StartExec(ctx, box, req)
				if err != nil {
					return err
				}
				fmt.Fprintln(cfg.stdout, e.ID)
				return nil
			}
			e, err := svc.Exec(ctx, box, req, cfg.stdout, cfg.stderr)
			if err != nil {
				return err
			}
			return execOutcome(cfg, e)
		},
	}
}

// execOutcome turns a finished exec into the CLI's result: its exit code,
// with the runtime error (timeout, ...) printed to stderr.
func execOutcome(cfg *rootConfig, e *boxrun.Exec) error {
	if e.ErrorMessage != "" {
		fmt.Fprintln(cfg.stderr, cfg.dim("boxrun: "+e.ErrorMessage))
	}
	switch {
	case e.ExitCode == nil:
		return errors.New("exec " + e.ID + " ended without an exit code (" + string(e.Status) + ")")
	case *e.ExitCode != 0:
		return &ExitError{Code: *e.ExitCode}
	}
	return nil
}
