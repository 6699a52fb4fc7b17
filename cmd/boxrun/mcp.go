package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// mcpFlags are the session limits shared by `boxrun mcp` and the /mcp
// endpoint of `boxrun serve`.
type mcpFlags struct {
	maxBoxes    int
	maxLifetime time.Duration
	hostDir     string
	allBoxes    bool
}

func (f *mcpFlags) register(fs *flag.FlagSet, prefix string) {
	fs.IntVar(&f.maxBoxes, prefix+"max-boxes", mcpserver.DefaultMaxBoxes, "boxes one MCP session may own at a time (negative: no limit)")
	fs.DurationVar(&f.maxLifetime, prefix+"max-lifetime", 0, "remove an MCP session's box this long after it was created (0: no limit)")
	fs.StringVar(&f.hostDir, prefix+"host-dir", "", "enable the upload/download tools, confined to this host directory (default: off)")
	fs.BoolVar(&f.allBoxes, prefix+"all-boxes", false, "let MCP sessions use every box, not only those they created")
}

// config returns the mcpserver configuration of the flags.
func (f *mcpFlags) config(log *slog.Logger) (mcpserver.Config, error) {
	c := mcpserver.Config{MaxBoxes: f.maxBoxes, MaxLifetime: f.maxLifetime, AllBoxes: f.allBoxes, Logger: log}
	if f.maxLifetime < 0 {
		return c, usagef("--max-lifetime must not be negative")
	}
	if f.hostDir != "" {
		abs, err := filepath.Abs(f.hostDir)
		if err != nil {
			return c, usagef("--host-dir: %v", err)
		}
		c.HostDir = abs
	}
	return c, nil
}

func newMCPCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("mcp")
	var mf mcpFlags
	mf.register(fs, "")
	keep := fs.Bool("keep", false, "keep the session's boxes when the client disconnects")
	return &ffcli.Command{
		Name:       "mcp",
		ShortUsage: "boxrun mcp [--max-boxes N] [--max-lifetime D] [--host-dir DIR] [--keep]",
		ShortHelp:  "serve the Model Context Protocol over stdio (for agent hosts)",
		LongHelp: "Speaks MCP (JSON-RPC over stdin/stdout) to an agent host and drives the BoxRun server\n" +
			"(started in the background if needed, like every client command). The boxes a session\n" +
			"creates are removed when stdin closes, unless created with keep or run with --keep.\n" +
			"Diagnostics go to stderr; stdout carries only MCP messages.",
		FlagSet: fs,
		Options: ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("mcp takes no arguments")
			}
			log := slog.New(slog.NewTextHandler(cfg.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			mc, err := mf.config(log)
			if err != nil {
				return err
			}
			mc.KeepBoxes = *keep
			svc, err := cfg.service(ctx)
			if err != nil {
				return err
			}
			srv := mcpserver.New(svc, mc)
			defer srv.Close()
			return srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(cfg.stdin), Writer: nopWriteCloser{cfg.stdout}})
		},
	}
}

// nopWriteCloser lets the MCP transport "close" stdout without closing it.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
