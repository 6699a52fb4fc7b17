package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/schollz/progressbar/v3"
)

func newImagesCmd(cfg *rootConfig) *ffcli.Command {
	ls := newImagesLsCmd(cfg)
	return &ffcli.Command{
		Name:       "images",
		ShortUsage: "boxrun images [ls|pull|load|tag|save|rm|prune|aliases|build-busybox] [args...]",
		ShortHelp:  "manage the server's image cache (default: ls)",
		FlagSet:    ls.FlagSet,
		Options:    ffOptions(),
		Subcommands: []*ffcli.Command{
			ls, newImagesPullCmd(cfg), newImagesLoadCmd(cfg), newImagesTagCmd(cfg), newImagesSaveCmd(cfg),
			newImagesRmCmd(cfg), newImagesPruneCmd(cfg),
			newImagesAliasesCmd(cfg), newBuildBusyboxCmd(cfg),
		},
		Exec: ls.Exec,
	}
}

func newImagesLsCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images ls")
	asJSON := fs.Bool("json", false, "print as JSON")
	return &ffcli.Command{
		Name:       "ls",
		ShortUsage: "boxrun images ls [--json]",
		ShortHelp:  "list cached images",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unknown images command %q", args[0])
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			imgs, err := svc.Images(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				if imgs == nil {
					imgs = []boxrun.ImageInfo{}
				}
				return writeJSON(cfg, imgs)
			}
			if len(imgs) == 0 {
				fmt.Fprintln(cfg.stdout, "No images cached.")
				return nil
			}
			fmt.Fprintln(cfg.stdout, cfg.bold(fmt.Sprintf("%-40s %-19s %10s  %s", "REF", "DIGEST", "SIZE", "CREATED")))
			for _, im := range imgs {
				dg := strings.TrimPrefix(im.Digest, "sha256:")
				if len(dg) > 12 {
					dg = "sha256:" + dg[:12]
				}
				created := im.Created
				if len(created) > 19 {
					created = created[:19]
				}
				fmt.Fprintf(cfg.stdout, "%-40s %-19s %10s  %s\n", im.Ref, dg, humanBytes(im.Size), created)
			}
			return nil
		},
	}
}

func newImagesPullCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images pull")
	progress := fs.String("progress", "auto", "progress output: auto (a bar on a terminal), bar, plain (a line per layer) or none")
	return &ffcli.Command{
		Name:       "pull",
		ShortUsage: "boxrun images pull [--progress auto|bar|plain|none] IMAGE...",
		ShortHelp:  "fetch images into the server's cache, with progress",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			pos, svc, err := cfg.argsAndService(ctx, fs, args, "pull needs IMAGE")
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
			for _, ref := range pos {
				info, err := pullWithProgress(ctx, cfg, svc, resolveImage(ref), mode)
				if err != nil {
					return err
				}
				fmt.Fprintf(cfg.stdout, "Pulled %s (%s, %s)\n", info.Ref, info.Digest, humanBytes(info.Size))
			}
			return nil
		},
	}
}

// pullWithProgress pulls ref while rendering the server's image.pull events.
func pullWithProgress(ctx context.Context, cfg *rootConfig, svc *client.Client, ref, mode string) (*boxrun.ImageInfo, error) {
	if mode == "none" {
		return svc.PullImage(ctx, ref)
	}
	sub, err := svc.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventImagePull}})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { renderPull(cfg, sub, ref, mode) })
	info, err := svc.PullImage(ctx, ref)
	sub.Close()
	wg.Wait()
	return info, err
}

// renderPull shows layer progress until the subscription closes.
func renderPull(cfg *rootConfig, sub boxrun.Subscription, ref, mode string) {
	type layer struct{ done, total int64 }
	layers := map[string]*layer{}
	finished := map[string]bool{}
	var bar *progressbar.ProgressBar
	if mode == "bar" {
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(cfg.stderr),
			progressbar.OptionSetDescription("Pulling "+ref),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish(),
		)
		defer bar.Finish()
	}
	for ev := range sub.C() {
		p := ev.Pull
		if p == nil {
			continue
		}
		l := layers[p.Layer]
		if l == nil {
			l = &layer{}
			layers[p.Layer] = l
		}
		l.done, l.total = p.Done, p.Total
		if p.Cached {
			l.done = l.total
		}
		complete := p.Cached || (l.total > 0 && l.done >= l.total)
		switch mode {
		case "plain":
			if complete && !finished[p.Layer] {
				finished[p.Layer] = true
				state := "downloaded"
				if p.Cached {
					state = "cached"
				}
				fmt.Fprintf(cfg.stderr, "%s: layer %s %s (%s)\n", ref, shortDigest(p.Layer), state, humanBytes(l.total))
			}
		case "bar":
			var done, total int64
			for _, l := range layers {
				done += l.done
				total += l.total
			}
			if total > 0 && bar.GetMax64() != total {
				bar.ChangeMax64(total)
			}
			_ = bar.Set64(done)
		}
	}
}

func shortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// humanBytes formats n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newImagesRmCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images rm")
	return &ffcli.Command{
		Name:       "rm",
		ShortUsage: "boxrun images rm IMAGE...",
		ShortHelp:  "remove images from the cache (their blobs go at the next prune)",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usagef("images rm needs IMAGE")
			}
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			for _, ref := range args {
				if err := svc.RemoveImage(ctx, resolveImage(ref)); err != nil {
					return err
				}
				fmt.Fprintf(cfg.stdout, "Removed %s\n", ref)
			}
			return nil
		},
	}
}

func newImagesPruneCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("images prune")
	return &ffcli.Command{
		Name:       "prune",
		ShortUsage: "boxrun images prune",
		ShortHelp:  "remove cached images no box uses",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			n, err := svc.PruneImages(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cfg.stdout, "Removed %d image(s)\n", n)
			return nil
		},
	}
}

func newImagesAliasesCmd(cfg *rootConfig) *ffcli.Command {
	return &ffcli.Command{
		Name:       "aliases",
		ShortUsage: "boxrun images aliases",
		ShortHelp:  "list the image aliases the CLI resolves (spec §12.3)",
		FlagSet:    cfg.newFlagSet("images aliases"),
		Options:    ffOptions(),
		Exec: func(context.Context, []string) error {
			as := imageAliases()
			fmt.Fprintln(cfg.stdout, cfg.bold(fmt.Sprintf("%-12s %-25s %s", "ALIAS", "IMAGE", "DESCRIPTION")))
			for _, a := range as {
				fmt.Fprintf(cfg.stdout, "%-12s %-25s %s\n", a.alias, a.image, a.description)
			}
			return nil
		},
	}
}
