package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// serveConfig holds the flags of `boxrun serve`.
type serveConfig struct {
	host, socket string
	socketGroup  string
	port         int
	driver       string
	runsc        string
	maxCPU       string
	maxMemoryMB  string
	verbose      bool
	mcp          bool
	mcpFlags     mcpFlags
	registries   registryFlags
	kube         kubeFlags
	imageOpts    []image.Option // from registries, checked by serve

	journalMaxAge     time.Duration
	journalMaxEntries int64
	hibernateAfter    time.Duration
	pools             stringList
}

func newServeCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("serve")
	var sc serveConfig
	fs.StringVar(&sc.host, "host", "127.0.0.1", "TCP address to listen on")
	fs.IntVar(&sc.port, "port", 9090, "TCP port to listen on")
	fs.StringVar(&sc.socket, "socket", "", "listen on this Unix socket instead of TCP")
	fs.StringVar(&sc.socketGroup, "socket-group", "", "with --socket: make the socket 0660 with this group (name or id), so its members can use it (default: 0600, owner only)")
	fs.StringVar(&sc.driver, "driver", envOr(cfg.getenv, "BOXRUN_DRIVER", "gvisor"), "isolation backend: gvisor, qemu or kubernetes (env BOXRUN_DRIVER)")
	fs.StringVar(&sc.runsc, "runsc", "", "path of runsc for the gvisor driver (default: $BOXRUN_RUNSC, next to this binary, or PATH)")
	fs.StringVar(&sc.maxCPU, "max-cpu", cfg.getenv("BOXRUN_MAX_CPU"), "total vCPUs running boxes may reserve (env BOXRUN_MAX_CPU; default: host CPUs)")
	fs.StringVar(&sc.maxMemoryMB, "max-memory-mb", cfg.getenv("BOXRUN_MAX_MEMORY_MB"), "total MiB running boxes may reserve (env BOXRUN_MAX_MEMORY_MB; default: host RAM)")
	fs.BoolVar(&sc.verbose, "verbose", false, "debug logging")
	fs.BoolVar(&sc.mcp, "mcp", true, "serve the Model Context Protocol (streamable HTTP) at /mcp")
	fs.DurationVar(&sc.journalMaxAge, "journal-max-age", 0, "delete event-journal entries older than this (0: 7 days; negative: keep regardless of age)")
	fs.Int64Var(&sc.journalMaxEntries, "journal-max-entries", 0, "keep at most this many event-journal entries (0: 100000; negative: no limit)")
	fs.DurationVar(&sc.hibernateAfter, "hibernate-after", 0, "hibernate boxes (saved with their memory, resumed by the next exec, cp, attach or start) after this long without use, unless created with their own idle timeout or a network (0: never)")
	fs.Var(&sc.pools, "pool", "keep N warm sandboxes for creates of IMAGE with that shape: IMAGE[:CPU,MEM_MB]=N (repeatable; the shape defaults to 2,1024)")
	sc.mcpFlags.register(fs, "mcp-")
	sc.registries.register(fs, cfg.getenv)
	sc.kube.register(fs, cfg.getenv)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "boxrun serve [--host 127.0.0.1] [--port 9090] [--socket PATH] [--driver gvisor|qemu|kubernetes [--kubeconfig F] [--namespace N]]",
		ShortHelp:  "run the BoxRun server (HTTP API + dashboard) in the foreground",
		LongHelp: "State (SQLite, images, sandboxes) lives in --state-dir (env BOXRUN_STATE_DIR).\n" +
			"Unlike other commands, serve reads no BOXRUN_HOST/PORT/SOCKET: those tell clients\n" +
			"where to connect. A non-loopback --host needs --token (env BOXRUN_TOKEN).",
		FlagSet: fs,
		// No env prefix here: BOXRUN_HOST/PORT/SOCKET are client settings
		// (spec §12.2); serve's env vars are read explicitly above.
		Options: []ff.Option{ff.WithConfigFileFlag("config"), ff.WithConfigFileParser(ff.PlainParser), ff.WithIgnoreUndefined(true)},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("serve takes no arguments")
			}
			if cfg.token == "" {
				cfg.token = cfg.getenv("BOXRUN_TOKEN")
			}
			return serve(ctx, cfg, &sc)
		},
	}
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// limit parses a BOXRUN_MAX_* value: "" or invalid (with a warning) is 0,
// the detected default.
func limit(cfg *rootConfig, name, v string) int64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		fmt.Fprintf(cfg.stderr, "Warning: invalid %s %q (want an integer > 0); using the detected value\n", name, v)
		return 0
	}
	return n
}

// openDriver makes the selected isolation backend.
func openDriver(sc *serveConfig, stateDir string, log *slog.Logger) (sandbox.Driver, error) {
	switch sc.driver {
	case "gvisor":
		return gvisor.New(gvisor.Config{Dir: filepath.Join(stateDir, "gvisor"), Runsc: sc.runsc, Logger: log})
	case "qemu":
		return openQEMU(stateDir, log)
	case "kubernetes":
		return openKube(&sc.kube, log)
	}
	return nil, usagef("unknown driver %q (want gvisor, qemu or kubernetes)", sc.driver)
}

// openManager opens the local Manager of serve.
func openManager(cfg *rootConfig, sc *serveConfig, log *slog.Logger) (*boxrun.Manager, error) {
	d, err := openDriver(sc, cfg.stateDir, log)
	if err != nil {
		return nil, err
	}
	pools, err := parsePools(sc.pools)
	if err != nil {
		d.Close()
		return nil, err
	}
	images, err := image.Open(filepath.Join(cfg.stateDir, "images"), append([]image.Option{image.WithLogger(log)}, sc.imageOpts...)...)
	if err != nil {
		d.Close()
		return nil, err
	}
	m, err := boxrun.Open(cfg.stateDir,
		boxrun.WithDriver(d), boxrun.WithImages(images), boxrun.WithLogger(log),
		boxrun.WithJournalRetention(sc.journalMaxAge, sc.journalMaxEntries),
		boxrun.WithHibernateAfter(sc.hibernateAfter),
		boxrun.WithPool(pools...),
		boxrun.WithLimits(limit(cfg, "BOXRUN_MAX_CPU", sc.maxCPU), limit(cfg, "BOXRUN_MAX_MEMORY_MB", sc.maxMemoryMB)))
	if err != nil {
		images.Close()
		d.Close()
		return nil, err
	}
	return m, nil
}

// serve runs the server until ctx ends (spec §13).
func serve(ctx context.Context, cfg *rootConfig, sc *serveConfig) error {
	level := slog.LevelInfo
	if sc.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(cfg.stderr, &slog.HandlerOptions{Level: level}))
	// Every flag is checked before anything touches the state directory.
	if sc.driver != "gvisor" && sc.driver != "qemu" && sc.driver != "kubernetes" {
		return usagef("unknown driver %q (want gvisor, qemu or kubernetes)", sc.driver)
	}
	var err error
	if sc.imageOpts, err = sc.registries.options(); err != nil {
		return err
	}
	if d := describeRegistries(sc.imageOpts, &sc.registries); d != "" {
		log.Info("registries", "config", d)
	}
	gid := -1
	if sc.socketGroup != "" {
		if sc.socket == "" {
			return usagef("--socket-group needs --socket")
		}
		if gid, err = lookupGroup(sc.socketGroup); err != nil {
			return usagef("--socket-group %q: %v", sc.socketGroup, err)
		}
	}
	if sc.socket == "" && cfg.token == "" && !loopbackHost(sc.host) {
		return fmt.Errorf("Failed to start server: refusing to listen on %s without a token: set --token (env BOXRUN_TOKEN) or listen on loopback or a Unix socket", sc.host)
	}
	if err := boxrun.CheckStateDir(cfg.stateDir); err != nil {
		return fmt.Errorf("Failed to start server: %w", err)
	}
	if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
		return fmt.Errorf("Failed to start server: %w", err)
	}
	var ln net.Listener
	if sc.socket != "" {
		if gid >= 0 {
			ln, err = httpapi.ListenUnixGroup(sc.socket, gid)
		} else {
			ln, err = httpapi.Listen("unix", sc.socket)
		}
		if err != nil {
			return fmt.Errorf("Failed to bind %s: %w", sc.socket, err)
		}
	} else {
		removeStaleSocket(envOr(cfg.getenv, "BOXRUN_SOCKET", cfg.socketPath()))
		addr := net.JoinHostPort(sc.host, strconv.Itoa(sc.port))
		if ln, err = httpapi.Listen("tcp", addr); err != nil {
			return fmt.Errorf("Failed to bind %s: %w", addr, err)
		}
	}
	m, err := openManager(cfg, sc, log)
	if err != nil {
		ln.Close()
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("Failed to start server: %w", err)
	}
	defer m.Close()
	if sc.socket != "" {
		fmt.Fprintf(cfg.stdout, "Starting BoxRun server on %s\n", sc.socket)
	} else {
		url := "http://" + ln.Addr().String()
		fmt.Fprintf(cfg.stdout, "Starting BoxRun server on %s\n", url)
		fmt.Fprintf(cfg.stdout, "Dashboard: %s/ui\n", url)
	}
	var opts []httpapi.Option
	opts = append(opts, httpapi.WithLogger(log))
	if sc.mcp {
		mc, err := sc.mcpFlags.config(log)
		if err != nil {
			return err
		}
		ms := mcpserver.New(m, mc)
		defer ms.Close()
		stop := context.AfterFunc(ctx, func() { ms.Close() }) // end MCP streams before the HTTP drain
		defer stop()
		opts = append(opts, httpapi.WithMount("mcp", ms.Handler()))
	}
	if cfg.token != "" {
		opts = append(opts, httpapi.WithToken(cfg.token))
	}
	err = httpapi.New(m, opts...).Serve(ctx, ln)
	if sc.socket != "" {
		os.Remove(sc.socket)
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil // Ctrl-C is a clean exit (spec §13)
}

// lookupGroup resolves a group name or numeric id to its id.
func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}

// loopbackHost reports whether host (an IP or a name) only reaches this
// machine: a loopback IP or "localhost".
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// removeStaleSocket deletes a socket file nobody listens on, so that
// auto-detecting clients fall back to TCP (spec §13). A live socket of
// another server is left alone.
func removeStaleSocket(path string) {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		return
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return
	}
	os.Remove(path)
}

// parsePools parses --pool values: IMAGE[:CPU,MEM_MB]=N. The image is
// resolved like create's (aliases).
func parsePools(items []string) ([]boxrun.PoolSpec, error) {
	var out []boxrun.PoolSpec
	for _, it := range items {
		i := strings.LastIndexByte(it, '=')
		if i <= 0 {
			return nil, usagef("--pool %q: want IMAGE[:CPU,MEM_MB]=N", it)
		}
		n, err := strconv.Atoi(it[i+1:])
		if err != nil || n < 1 {
			return nil, usagef("--pool %q: N must be a positive number", it)
		}
		ps := boxrun.PoolSpec{Image: it[:i], Size: n}
		if j := strings.LastIndexByte(ps.Image, ':'); j > 0 {
			if c, m, ok := strings.Cut(ps.Image[j+1:], ","); ok {
				cpu, err1 := strconv.ParseInt(c, 10, 64)
				mem, err2 := strconv.ParseInt(m, 10, 64)
				if err1 != nil || err2 != nil || cpu < 1 || mem < 1 {
					return nil, usagef("--pool %q: the shape must be CPU,MEM_MB (positive numbers)", it)
				}
				ps.Image, ps.CPU, ps.MemoryMB = ps.Image[:j], cpu, mem
			}
		}
		ps.Image = resolveImage(ps.Image)
		out = append(out, ps)
	}
	return out, nil
}
