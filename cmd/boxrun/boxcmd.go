package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// exactArgs parses args (flags may follow the positionals, see interspersed)
// and returns the positionals, or the usage error format/a unless there are
// exactly n of them.
func exactArgs(fs *flag.FlagSet, args []string, n int, format string, a ...any) ([]string, error) {
	pos, err := interspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usagef(format, a...)
	}
	return pos, nil
}

// argsAndService parses args (flags may follow the positionals, see
// interspersed), fails with the usage error missing when there is no
// positional, and then connects to the server.
func (c *rootConfig) argsAndService(ctx context.Context, fs *flag.FlagSet, args []string, missing string) ([]string, *client.Client, error) {
	pos, err := interspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) == 0 {
		return nil, nil, usagef("%s", missing)
	}
	svc, err := c.service(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pos, svc, nil
}

// forEachBox is the Exec of a `NAME BOX...` command: it needs at least one
// BOX, connects, and calls do for each BOX in order, stopping at the first
// error.
func forEachBox(cfg *rootConfig, fs *flag.FlagSet, name string, do func(ctx context.Context, svc *client.Client, box string) error) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		boxes, svc, err := cfg.argsAndService(ctx, fs, args, name+" needs at least one BOX")
		if err != nil {
			return err
		}
		for _, b := range boxes {
			if err := do(ctx, svc, b); err != nil {
				return err
			}
		}
		return nil
	}
}

// newBoxVerbCmd builds a flagless `NAME BOX...` command that calls verb
// (a method expression such as (*client.Client).Stop) on each BOX and prints
// "<done> <box ID>" per box.
func newBoxVerbCmd(cfg *rootConfig, name, help, done string, verb func(*client.Client, context.Context, string) (*boxrun.Box, error)) *ffcli.Command {
	fs := cfg.newFlagSet(name)
	return &ffcli.Command{
		Name:       name,
		ShortUsage: "boxrun " + name + " BOX...",
		ShortHelp:  help,
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: forEachBox(cfg, fs, name, func(ctx context.Context, svc *client.Client, b string) error {
			box, err := verb(svc, ctx, b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "%s %s\n", done, box.ID)
			return nil
		}),
	}
}
