package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/boxrun/boxrun"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func newImagesLoadCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images load")
	var tags stringList
	fs.Var(&tags, "t", "also name the image NAME[:TAG] (repeatable; the archive must hold one image)")
	fs.Var(&tags, "tag", "alias of -t")
	input := fs.String("i", "", "read the archive from this file (as the FILE argument)")
	progress := fs.String("progress", "auto", "progress output: auto (a bar on a terminal), bar, plain or none")
	return &ffcli.Command{
		Name:       "load",
		ShortUsage: "boxrun images load [-t NAME[:TAG]]... FILE|-",
		ShortHelp:  "load images from a docker save or OCI layout tarball (plain, gzip or zstd)",
		LongHelp: "Names come from the archive's own tags (docker save) or image-name annotations (OCI\n" +
			"layout), plus -t. Boxes created from these names use the loaded image and never contact\n" +
			"a registry for it (unless created with --pull always).",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if *input != "" {
				pos = append(pos, *input)
			}
			if len(pos) != 1 {
				return usagef("images load needs one FILE (or - for stdin)")
			}
			var r io.Reader = cfg.stdin
			var size int64
			name := "stdin"
			if pos[0] != "-" {
				f, err := os.Open(pos[0])
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
					size = fi.Size()
				}
				r, name = f, filepath.Base(pos[0])
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			mode := *progress
			if mode == "auto" {
				mode = "none"
				if isTTY(cfg.stderr) {
					mode = "bar"
				}
			}
			var infos []boxrun.ImageInfo
			load := func() error {
				var err error
				infos, err = svc.LoadImages(ctx, r, boxrun.LoadImagesOptions{Tags: tags, Size: size})
				return err
			}
			if mode == "none" {
				err = load()
			} else {
				sub, serr := svc.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventImagePull}})
				if serr != nil {
					return serr
				}
				var wg sync.WaitGroup
				wg.Go(func() { renderPull(cfg, sub, name, mode) })
				err = load()
				sub.Close()
				wg.Wait()
			}
			if err != nil {
				return err
			}
			for _, info := range infos {
				fmt.Fprintf(cfg.stdout, "Loaded %s (%s)\n", info.Ref, info.Digest)
			}
			return nil
		},
	}
}

func newImagesTagCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images tag")
	return &ffcli.Command{
		Name:       "tag",
		ShortUsage: "boxrun images tag SOURCE NAME[:TAG]",
		ShortHelp:  "give a cached image another name (never pulls)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, err := interspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 2 {
				return usagef("images tag needs SOURCE and NAME[:TAG]")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			info, err := svc.TagImage(ctx, resolveImage(pos[0]), pos[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Tagged %s as %s (%s)\n", pos[0], info.Ref, info.Digest)
			return nil
		},
	}
}

func newImagesSaveCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images save")
	output := fs.String("o", "", "write the archive to this file (default: stdout, unless it is a terminal)")
	fs.StringVar(output, "output", "", "alias of -o")
	return &ffcli.Command{
		Name:       "save",
		ShortUsage: "boxrun images save NAME... [-o FILE]",
		ShortHelp:  "write cached images to a docker save tarball (docker load reads it)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, svc, err := cfg.argsAndService(ctx, fs, args, "images save needs NAME")
			if err != nil {
				return err
			}
			refs := make([]string, len(pos))
			for i, p := range pos {
				refs[i] = resolveImage(p)
			}
			if *output == "" || *output == "-" {
				if *output == "" && isTTY(cfg.stdout) {
					return usagef("refusing to write an archive to a terminal: use -o FILE or redirect stdout")
				}
				return svc.SaveImages(ctx, cfg.stdout, refs)
			}
			// Written beside the target and renamed into place: a failed
			// save leaves no partial archive under the name.
			dir := filepath.Dir(*output)
			tmp, err := os.CreateTemp(dir, "."+filepath.Base(*output)+".*")
			if err != nil {
				return err
			}
			err = svc.SaveImages(ctx, tmp, refs)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), *output)
			}
			if err != nil {
				os.Remove(tmp.Name())
				return err
			}
			fmt.Fprintf(cfg.stderr, "Saved %d image(s) to %s\n", len(refs), *output)
			return nil
		},
	}
}
