package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newStatsCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("stats")
	noStream := fs.Bool("no-stream", false, "print one sample and exit")
	asJSON := fs.Bool("json", false, "print samples as JSON (one array with --no-stream, else one object per line)")
	interval := fs.Duration("interval", time.Second, "time between samples when streaming")
	return &ffcli.Command{
		Name:       "stats",
		ShortUsage: "boxrun stats [flags] [BOX...]",
		ShortHelp:  "show live resource use of boxes (all running boxes when none is named)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			boxes := args
			names := map[string]string{}
			if len(boxes) == 0 {
				list, err := svc.List(ctx, boxrun.BoxFilter{Status: boxrun.StatusRunning})
				if err != nil {
					return err
				}
				for _, b := range list {
					boxes = append(boxes, b.ID)
					names[b.ID] = b.Name
				}
			}
			if *noStream {
				out := make([]*boxrun.Stats, 0, len(boxes))
				for _, b := range boxes {
					st, err := svc.Stats(ctx, b)
					if err != nil {
						return err
					}
					out = append(out, st)
				}
				if *asJSON {
					return writeJSON(cfg, out)
				}
				printStatsTable(cfg, out, names)
				return nil
			}
			return streamStats(ctx, cfg, svc, boxes, names, *interval, *asJSON)
		},
	}
}

// streamStats follows every box until each stopped or ctx ends (Ctrl-C),
// printing a table per interval (redrawn in place on a terminal) or one
// JSON object per sample.
func streamStats(ctx context.Context, cfg *rootConfig, svc boxrun.Service, boxes []string, names map[string]string, interval time.Duration, asJSON bool) error {
	var mu sync.Mutex
	latest := map[string]*boxrun.Stats{}
	var errs []error
	var wg sync.WaitGroup
	for _, b := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := svc.StatsStream(ctx, b, boxrun.StatsOptions{Interval: interval}, func(st *boxrun.Stats) error {
				mu.Lock()
				defer mu.Unlock()
				if asJSON {
					return writeJSONLine(cfg, st)
				}
				latest[st.BoxID] = st
				return nil
			})
			mu.Lock()
			if err != nil && ctx.Err() == nil {
				errs = append(errs, fmt.Errorf("%s: %w", b, err))
			}
			delete(latest, b)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tty := isTTY(cfg.stdout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return errors.Join(errs...)
		case <-ctx.Done():
			<-done
			return nil
		case <-tick.C:
		}
		if asJSON {
			continue
		}
		mu.Lock()
		var rows []*boxrun.Stats
		for _, st := range latest {
			rows = append(rows, st)
		}
		mu.Unlock()
		if tty {
			fmt.Fprint(cfg.stdout, "\x1b[H\x1b[2J") // home, clear screen
		}
		printStatsTable(cfg, rows, names)
		if !tty {
			fmt.Fprintln(cfg.stdout)
		}
	}
}

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(cfg *rootConfig, v any) error {
	return json.NewEncoder(cfg.stdout).Encode(v)
}

// printStatsTable prints samples like `docker stats`.
func printStatsTable(cfg *rootConfig, rows []*boxrun.Stats, names map[string]string) {
	sort.Slice(rows, func(i, j int) bool { return rows[i].BoxID < rows[j].BoxID })
	header := fmt.Sprintf("%-20s %-15s %7s %21s %6s %5s %9s %19s", "BOX ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "DISK", "NET I/O")
	fmt.Fprintln(cfg.stdout, cfg.bold(strings.TrimRight(header, " ")))
	for _, st := range rows {
		name := names[st.BoxID]
		if name == "" {
			name = "-"
		}
		memPct := "-"
		if st.MemoryLimitBytes > 0 && st.MemoryBytes >= 0 {
			memPct = fmt.Sprintf("%.1f%%", 100*float64(st.MemoryBytes)/float64(st.MemoryLimitBytes))
		}
		net := "-"
		if st.NetRxBytes >= 0 && st.NetTxBytes >= 0 {
			net = sizeOrDash(st.NetRxBytes) + " / " + sizeOrDash(st.NetTxBytes)
		}
		fmt.Fprintf(cfg.stdout, "%-20s %-15s %6.1f%% %21s %6s %5s %9s %19s\n", st.BoxID, name, 100*st.CPUCores,
			sizeOrDash(st.MemoryBytes)+" / "+sizeOrDash(st.MemoryLimitBytes), memPct, count(st.Processes), sizeOrDash(st.DiskBytes), net)
	}
}

// sizeOrDash is humanBytes, or "-" when n is unknown (negative).
func sizeOrDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return humanBytes(n)
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
