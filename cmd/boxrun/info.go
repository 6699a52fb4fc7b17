package main

import (
	"context"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func newInfoCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("info")
	asJSON := fs.Bool("json", false, "print as JSON")
	return &ffcli.Command{
		Name:       "info",
		ShortUsage: "boxrun info [--json]",
		ShortHelp:  "show the server address and its resource limits",
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
			if *asJSON {
				return writeJSON(cfg, info)
			}
			fmt.Fprintf(cfg.stdout, "Server:     %s\n", cfg.addr)
			fmt.Fprintf(cfg.stdout, "Max CPU:    %d\n", info.MaxCPU)
			fmt.Fprintf(cfg.stdout, "Max memory: %d MB\n", info.MaxMemoryMB)
			return nil
		},
	}
}
