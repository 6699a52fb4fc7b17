package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/boxrun/boxrun"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newInfoCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("info")
	asJSON := fs.Bool("json", false, "print as JSON")
	return &ffcli.Command{
		Name:       "info",
		ShortUsage: "boxrun info [--json]",
		ShortHelp:  "show the server address, its resource limits and its driver",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			info, err := svc.Info(ctx)
			if err != nil {
				return err
			}
			var driver *boxrun.DriverInfo
			if di, err := svc.DriverInfo(ctx); err == nil {
				driver = &di
			}
			if *asJSON {
				return writeJSON(cfg, struct {
					boxrun.Info
					Driver *boxrun.DriverInfo `json:"driver,omitempty"`
				}{info, driver})
			}
			fmt.Fprintf(cfg.stdout, "Server:     %s\n", cfg.addr)
			fmt.Fprintf(cfg.stdout, "Max CPU:    %d\n", info.MaxCPU)
			fmt.Fprintf(cfg.stdout, "Max memory: %d MB\n", info.MaxMemoryMB)
			if driver != nil {
				fmt.Fprintf(cfg.stdout, "Driver:     %s\n", driver.Name)
				keys := make([]string, 0, len(driver.Details))
				for k := range driver.Details {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(cfg.stdout, "  %s: %s\n", k, driver.Details[k])
				}
			}
			return nil
		},
	}
}
