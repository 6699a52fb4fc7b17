package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// Snapshot commands (issue 14): checkpoint, snapshots [ls|inspect|rm],
// restore, fork. They use the snapshot API extension.

func newCheckpointCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("checkpoint")
	leave := fs.Bool("leave-running", false, "keep the box running after the checkpoint (default: it is stopped)")
	asJSON := fs.Bool("json", false, "print the snapshot as JSON")
	return &ffcli.Command{
		Name:       "checkpoint",
		ShortUsage: "boxrun checkpoint [--leave-running] [--json] BOX",
		ShortHelp:  "save a running box, memory and files, as a snapshot; prints the snapshot ID",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 1, "checkpoint needs exactly one BOX")
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			s, err := svc.Checkpoint(ctx, pos[0], boxrun.CheckpointOptions{LeaveRunning: *leave})
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cfg, s)
			}
			fmt.Fprintln(cfg.stdout, s.ID)
			return nil
		},
	}
}

func newSnapshotsCmd(cfg *rootConfig) *ffcli.Command {
	ls := newSnapshotsLsCmd(cfg)
	return &ffcli.Command{
		Name:        "snapshots",
		ShortUsage:  "boxrun snapshots [ls|inspect|rm] [flags] [SNAPSHOT...]",
		ShortHelp:   "list, inspect and remove snapshots (default: ls)",
		FlagSet:     ls.FlagSet,
		Options:     ffOptions(),
		Subcommands: []*ffcli.Command{ls, newSnapshotsInspectCmd(cfg), newSnapshotsRmCmd(cfg)},
		Exec:        ls.Exec,
	}
}

func newSnapshotsLsCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("snapshots ls")
	asJSON := fs.Bool("json", false, "print the snapshots as a JSON array")
	quiet := fs.Bool("quiet", false, "print snapshot IDs only")
	fs.BoolVar(quiet, "q", false, "shorthand for --quiet")
	return &ffcli.Command{
		Name:       "ls",
		ShortUsage: "boxrun snapshots ls [--json] [-q]",
		ShortHelp:  "list snapshots, newest first",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if _, err := exactArgs(fs, args, 0, "snapshots ls takes no arguments"); err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			list, err := svc.Snapshots(ctx)
			if err != nil {
				return err
			}
			switch {
			case *asJSON:
				if list == nil {
					list = []*boxrun.Snapshot{}
				}
				return writeJSON(cfg, list)
			case *quiet:
				for _, s := range list {
					fmt.Fprintln(cfg.stdout, s.ID)
				}
				return nil
			}
			if len(list) == 0 {
				fmt.Fprintln(cfg.stdout, "No snapshots found.")
				return nil
			}
			header := strings.TrimRight(fmt.Sprintf("%-18s %-18s %-25s %4s %8s %10s %-20s",
				"ID", "SOURCE BOX", "IMAGE", "CPU", "MEM", "SIZE", "CREATED"), " ")
			fmt.Fprintln(cfg.stdout, cfg.bold(header))
			fmt.Fprintln(cfg.stdout, cfg.dim(strings.Repeat("-", len(header))))
			for _, s := range list {
				created := boxrun.FormatTime(s.CreatedAt)
				if len(created) > 19 {
					created = created[:19]
				}
				img := s.Image
				if len(img) > 25 {
					img = "…" + img[len(img)-24:]
				}
				fmt.Fprintf(cfg.stdout, "%-18s %-18s %-25s %4d %6dMB %10s %-20s\n",
					s.ID, s.SourceBoxID, img, s.CPU, s.MemoryMB, humanBytes(s.SizeBytes), created)
			}
			return nil
		},
	}
}

func newSnapshotsInspectCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("snapshots inspect")
	return &ffcli.Command{
		Name:       "inspect",
		ShortUsage: "boxrun snapshots inspect SNAPSHOT",
		ShortHelp:  "print a snapshot as JSON",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 1, "snapshots inspect needs exactly one SNAPSHOT")
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			s, err := svc.GetSnapshot(ctx, pos[0])
			if err != nil {
				return err
			}
			return writeJSON(cfg, s)
		},
	}
}

func newSnapshotsRmCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("snapshots rm")
	return &ffcli.Command{
		Name:       "rm",
		ShortUsage: "boxrun snapshots rm SNAPSHOT...",
		ShortHelp:  "remove snapshots and their files (boxes restored from them stay)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: forEachBox(cfg, fs, "snapshots rm", func(ctx context.Context, svc *client.Client, id string) error {
			if err := svc.RemoveSnapshot(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Removed %s\n", id)
			return nil
		}),
	}
}

func newRestoreCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("restore")
	name := fs.String("name", "", "name of the new box")
	asJSON := fs.Bool("json", false, "print the new box as JSON")
	return &ffcli.Command{
		Name:       "restore",
		ShortUsage: "boxrun restore [--name NAME] [--json] SNAPSHOT",
		ShortHelp:  "make a running box from a snapshot (its processes continue); prints the box ID",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 1, "restore needs exactly one SNAPSHOT")
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			b, err := svc.Restore(ctx, pos[0], boxrun.RestoreSpec{Name: *name})
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cfg, b)
			}
			fmt.Fprintln(cfg.stdout, b.ID)
			return nil
		},
	}
}

func newForkCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("fork")
	n := fs.Int("n", 1, fmt.Sprintf("how many boxes to make (1 to %d)", boxrun.MaxFork))
	asJSON := fs.Bool("json", false, "print the new boxes as a JSON array")
	return &ffcli.Command{
		Name:       "fork",
		ShortUsage: "boxrun fork [-n N] [--json] BOX",
		ShortHelp:  "make N running copies of a running box, memory and files; prints their IDs",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 1, "fork needs exactly one BOX")
			if err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			boxes, err := svc.Fork(ctx, pos[0], *n)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cfg, boxes)
			}
			for _, b := range boxes {
				fmt.Fprintln(cfg.stdout, b.ID)
			}
			return nil
		},
	}
}

func newHibernateCmd(cfg *rootConfig) *ffcli.Command {
	return newBoxVerbCmd(cfg, "hibernate", "save running boxes with their memory and free them; the next exec, cp, attach or start resumes them", "Hibernated", (*client.Client).Hibernate)
}
