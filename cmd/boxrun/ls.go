package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newLsCmd(cfg *rootConfig, name string) *ffcli.Command {
	fs := cfg.newFlagSet(name)
	status := fs.String("status", "", "only boxes with this status (running, stopped, creating, error, all)")
	fs.StringVar(status, "s", "", "shorthand for --status")
	asJSON := fs.Bool("json", false, "print the boxes as a JSON array")
	lifetime := fs.Bool("lifetime", false, "show when each box's ttl or idle timeout fires instead of the resource columns")
	quiet := fs.Bool("quiet", false, "print box IDs only")
	fs.BoolVar(quiet, "q", false, "shorthand for --quiet")
	help := "list boxes, newest first"
	if name == "list" {
		help = "alias of ls"
	}
	return &ffcli.Command{
		Name:       name,
		ShortUsage: "boxrun " + name + " [flags]",
		ShortHelp:  help,
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if _, err := exactArgs(fs, args, 0, "%s takes no arguments", name); err != nil {
				return err
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			boxes, err := svc.List(ctx, boxrun.BoxFilter{Status: boxrun.BoxStatus(*status)})
			if err != nil {
				return err
			}
			switch {
			case *asJSON:
				if boxes == nil {
					boxes = []*boxrun.Box{}
				}
				return writeJSON(cfg, boxes)
			case *quiet:
				for _, b := range boxes {
					fmt.Fprintln(cfg.stdout, b.ID)
				}
				return nil
			}
			if *lifetime {
				return printLifetimeTable(ctx, cfg, svc, boxes)
			}
			printBoxTable(cfg, boxes)
			return nil
		},
	}
}

// printBoxTable prints the spec §14.3 table.
func printBoxTable(cfg *rootConfig, boxes []*boxrun.Box) {
	if len(boxes) == 0 {
		fmt.Fprintln(cfg.stdout, "No boxes found.")
		return
	}
	header := fmt.Sprintf("%-20s %-15s %-12s %-25s %4s %8s %6s %-20s",
		"ID", "NAME", "STATUS", "IMAGE", "CPU", "MEM", "DISK", "CREATED")
	header = strings.TrimRight(header, " ")
	fmt.Fprintln(cfg.stdout, cfg.bold(header))
	fmt.Fprintln(cfg.stdout, cfg.dim(strings.Repeat("-", len(header))))
	for _, b := range boxes {
		created := boxrun.FormatTime(b.CreatedAt)
		if len(created) > 19 {
			created = created[:19]
		}
		name := b.Name
		if name == "" {
			name = "-"
		}
		line := fmt.Sprintf("%-20s %-15s %s %-25s %4d %7dMB %5dG %-20s",
			b.ID, name, cfg.colorStatus(b.Status, 12), b.Image, b.CPU, b.MemoryMB, b.DiskSizeGB, created)
		fmt.Fprintln(cfg.stdout, strings.TrimRight(line, " "))
	}
}

// printLifetimeTable prints each box's status, limits and when they fire.
func printLifetimeTable(ctx context.Context, cfg *rootConfig, svc boxrun.Service, boxes []*boxrun.Box) error {
	if len(boxes) == 0 {
		fmt.Fprintln(cfg.stdout, "No boxes found.")
		return nil
	}
	header := fmt.Sprintf("%-20s %-15s %-12s %-8s %-8s %-8s %-20s %-20s", "ID", "NAME", "STATUS", "TTL", "IDLE", "ON EXP", "EXPIRES", "IDLE EXPIRES")
	fmt.Fprintln(cfg.stdout, cfg.bold(strings.TrimRight(header, " ")))
	for _, b := range boxes {
		lt, err := svc.Lifetime(ctx, b.ID)
		if err != nil {
			return err
		}
		name := b.Name
		if name == "" {
			name = "-"
		}
		dur := func(d time.Duration) string {
			if d <= 0 {
				return "-"
			}
			return d.String()
		}
		at := func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		}
		status := string(b.Status)
		if lt.ExpiredBy != "" && b.Status != boxrun.StatusRunning {
			status += " (" + lt.ExpiredBy + ")"
		}
		fmt.Fprintln(cfg.stdout, strings.TrimRight(fmt.Sprintf("%-20s %-15s %-12s %-8s %-8s %-8s %-20s %-20s", b.ID, name, status,
			dur(lt.TTL), dur(lt.IdleTimeout), lt.OnExpire, at(lt.ExpiresAt), at(lt.IdleExpiresAt)), " "))
	}
	return nil
}
