package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newEventsCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("events")
	box := fs.String("box", "", "only events of this box ID")
	var types stringList
	fs.Var(&types, "type", "only events of this type, e.g. box.created, exec.exited, image.pull (repeatable)")
	since := fs.Int64("since", -1, "first replay journaled events after this seq (0: from the start)")
	asJSON := fs.Bool("json", false, "print one JSON event per line")
	return &ffcli.Command{
		Name:       "events",
		ShortUsage: "boxrun events [--box ID] [--type T]... [--since SEQ] [--json]",
		ShortHelp:  "stream server events (box and exec lifecycle, image pulls) until Ctrl-C",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("events takes no arguments")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			f := boxrun.EventFilter{BoxID: *box}
			for _, t := range types {
				f.Types = append(f.Types, boxrun.EventType(t))
			}
			if *since >= 0 {
				f.Replay, f.AfterSeq = true, *since
			}
			sub, err := svc.Subscribe(ctx, f)
			if err != nil {
				return err
			}
			defer sub.Close()
			enc := json.NewEncoder(cfg.stdout)
			for ev := range sub.C() {
				if *asJSON {
					if err := enc.Encode(ev); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintln(cfg.stdout, describeEvent(ev))
			}
			if err := sub.Err(); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return ctx.Err()
		},
	}
}

// describeEvent is the human form of an event.
func describeEvent(ev boxrun.Event) string {
	parts := []string{boxrun.FormatTime(ev.Time), string(ev.Type)}
	if ev.Seq > 0 {
		parts = append(parts, fmt.Sprintf("#%d", ev.Seq))
	}
	if ev.BoxID != "" {
		parts = append(parts, ev.BoxID)
	}
	if ev.ExecID != "" {
		parts = append(parts, ev.ExecID)
	}
	switch {
	case ev.Box != nil:
		parts = append(parts, "status="+string(ev.Box.Status))
		if ev.Box.Name != "" {
			parts = append(parts, "name="+ev.Box.Name)
		}
	case ev.Exec != nil:
		parts = append(parts, "status="+string(ev.Exec.Status), fmt.Sprintf("cmd=%q", ev.Exec.Cmd))
		if ev.Exec.ExitCode != nil {
			parts = append(parts, fmt.Sprintf("exit=%d", *ev.Exec.ExitCode))
		}
	case ev.Pull != nil:
		parts = append(parts, ev.Pull.Ref, shortDigest(ev.Pull.Layer), fmt.Sprintf("%d/%d", ev.Pull.Done, ev.Pull.Total))
	case ev.Output != nil:
		parts = append(parts, ev.Output.Stream, fmt.Sprintf("%q", ev.Output.Data))
	}
	return strings.Join(parts, " ")
}
