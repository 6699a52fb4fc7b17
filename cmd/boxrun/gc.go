package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newGCCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("gc")
	olderThan := fs.String("older-than", "3600", "remove boxes stopped (or failed) longer ago than this: seconds, or a duration like 2h")
	return &ffcli.Command{
		Name:       "gc",
		ShortUsage: "boxrun gc [--older-than 3600]",
		ShortHelp:  "remove old stopped and failed boxes",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if _, err := exactArgs(fs, args, 0, "gc takes no arguments"); err != nil {
				return err
			}
			d, err := parseSeconds(*olderThan)
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			n, err := svc.GC(ctx, d)
			if err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Removed %d box(es)\n", n)
			return nil
		},
	}
}

// parseSeconds parses whole seconds or a Go duration.
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, usagef("bad duration %q (seconds or e.g. 2h)", s)
	}
	return d, nil
}
