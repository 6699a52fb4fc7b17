package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newWatchCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("watch")
	recursive := fs.Bool("r", false, "also watch every directory below PATH")
	asJSON := fs.Bool("json", false, "print one JSON event per line")
	return &ffcli.Command{
		Name:       "watch",
		ShortUsage: "boxrun watch [-r] [--json] BOX PATH",
		ShortHelp:  "print file changes under PATH inside a running box until it stops or Ctrl-C",
		LongHelp: "Each change is one line: SEQ TYPE PATH (renamed: OLD -> NEW); TYPE is created, modified,\n" +
			"removed, renamed or overflow (changes lost because they came faster than they were read).\n" +
			"PATH must be absolute. A missing PATH is an error.",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 2 {
				return usagef("watch takes BOX and PATH")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			err = svc.Watch(ctx, args[0], args[1], boxrun.WatchOptions{Recursive: *recursive}, func(ev boxrun.FileEvent) error {
				if *asJSON {
					return writeJSONLine(cfg, ev)
				}
				switch ev.Type {
				case boxrun.FileWatchReady:
					return nil
				case boxrun.FileOverflow:
					_, err := fmt.Fprintf(cfg.stdout, "%d overflow %d changes lost\n", ev.Seq, ev.Dropped)
					return err
				case boxrun.FileRenamed:
					_, err := fmt.Fprintf(cfg.stdout, "%d renamed %s -> %s\n", ev.Seq, ev.OldPath, ev.Path)
					return err
				}
				suffix := ""
				if ev.Dir {
					suffix = "/"
				}
				_, err := fmt.Fprintf(cfg.stdout, "%d %s %s%s\n", ev.Seq, ev.Type, ev.Path, suffix)
				return err
			})
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
}
