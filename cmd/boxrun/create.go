package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newCreateCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("create")
	var bf boxFlags
	bf.register(fs, true, true)
	asJSON := fs.Bool("json", false, "print the box as JSON")
	return &ffcli.Command{
		Name:       "create",
		ShortUsage: "boxrun create [flags] [IMAGE]",
		ShortHelp:  "create and start a box (IMAGE default: default = ubuntu:24.04)",
		LongHelp: "IMAGE is an OCI reference (alpine:3.20, oci:/path/to/layout, ...) or an alias\n" +
			"(see `boxrun images aliases`).",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			_, box, err := createFromArgs(ctx, cfg, fs, &bf, "create", args)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cfg, box)
			}
			fmt.Fprintln(cfg.stdout, box.ID)
			if box.Name != "" {
				fmt.Fprintf(cfg.stdout, "Name: %s\n", box.Name)
			}
			fmt.Fprintf(cfg.stdout, "Status: %s\n", box.Status)
			return nil
		},
	}
}

// createFromArgs is the shared start of create and shell: it takes at most
// one IMAGE (default "default", flags may follow it), builds the spec from
// bf, connects and creates the box. name is the command, for usage errors.
func createFromArgs(ctx context.Context, cfg *rootConfig, fs *flag.FlagSet, bf *boxFlags, name string, args []string) (*client.Client, *boxrun.Box, error) {
	pos, err := interspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) > 1 {
		return nil, nil, usagef("%s takes at most one IMAGE, got %q", name, pos)
	}
	image := "default"
	if len(pos) == 1 {
		image = pos[0]
	}
	spec, err := bf.spec(image)
	if err != nil {
		return nil, nil, err
	}
	svc, err := cfg.service(ctx)
	if err != nil {
		return nil, nil, err
	}
	box, err := svc.Create(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	return svc, box, nil
}

// writeJSON prints v as indented JSON.
func writeJSON(cfg *rootConfig, v any) error {
	enc := json.NewEncoder(cfg.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
