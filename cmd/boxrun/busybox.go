package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/boxrun/boxrun/image"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newBuildBusyboxCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images build-busybox")
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox binary (Debian: apt install busybox-static)")
	return &ffcli.Command{
		Name:       "build-busybox",
		ShortUsage: "boxrun images build-busybox [--busybox /bin/busybox] DIR",
		ShortHelp:  "write a tiny busybox image as an OCI layout in DIR (for machines without a registry); use it as oci:DIR",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := exactArgs(fs, args, 1, "build-busybox needs DIR")
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(pos[0])
			if err != nil {
				return err
			}
			if err := image.BuildBusyboxLayout(ctx, *busybox, dir); err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Wrote oci:%s\n", dir)
			return nil
		},
	}
}
