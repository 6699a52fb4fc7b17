package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"
)

// version is the CLI's version (the original is 0.3.0; "go" marks this
// implementation the way the original prints "(rust)").
const version = "0.3.0"

// ExitError makes the process exit with Code without printing anything: the
// remote exit code that exec, run and attach propagate.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// reportedError wraps an error that run has already printed: exit code 1.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// exitCode maps run's error to the process exit code: 0 success, the remote
// code for *ExitError, 2 for usage errors, 130 after an interrupt, 1 else.
func exitCode(err error) int {
	var ee *ExitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}

// run is the whole CLI: it parses args, runs the command and prints errors
// to stderr (spec §14.1), returning an error whose exitCode is the process
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := newRootConfig(stdin, stdout, stderr, os.Getenv)
	root := newRootCmd(cfg)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		// The flag package has printed the error and the usage.
		return &usageError{err.Error()}
	}
	return cfg.report(root.Run(ctx))
}

// rootConfig holds the global flags and the stdio every command shares.
type rootConfig struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	url       string // --url: server URL; "" = BOXRUN_HOST/PORT, the default socket, or 127.0.0.1:9090
	stateDir  string // --state-dir
	token     string // --token
	autostart bool   // --autostart: start a server when none answers
	config    string // --config: ff plain config file

	svc  *client.Client // built on first use by service()
	addr string         // the address svc talks to
}

func newRootConfig(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *rootConfig {
	return &rootConfig{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
}

// defaultStateDir is $BOXRUN_STATE_DIR, else $HOME/.boxrun (/root/.boxrun
// when HOME is unset).
func (c *rootConfig) defaultStateDir() string {
	if d := c.getenv("BOXRUN_STATE_DIR"); d != "" {
		return d
	}
	home := c.getenv("HOME")
	if home == "" {
		home = "/root"
	}
	return home + "/.boxrun"
}

// registerFlags adds the global flags to fs. Every command's flag set has
// them, so they may come before or after the command name.
func (c *rootConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "server URL: http://host:port or unix:///path (env BOXRUN_URL; default BOXRUN_HOST/BOXRUN_PORT, else the socket in the state dir if present, else http://127.0.0.1:9090)")
	fs.StringVar(&c.stateDir, "state-dir", c.defaultStateDir(), "state directory (env BOXRUN_STATE_DIR)")
	fs.StringVar(&c.token, "token", "", "bearer token for a remote server (env BOXRUN_TOKEN)")
	fs.BoolVar(&c.autostart, "autostart", true, "start boxrun serve in the background when no server answers (env BOXRUN_AUTOSTART)")
	fs.StringVar(&c.config, "config", "", "config `file` with one \"flag value\" per line (env BOXRUN_CONFIG)")
}

// newFlagSet returns a ContinueOnError flag set with the global flags that
// prints to stderr.
func (c *rootConfig) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.registerFlags(fs)
	return fs
}

// ffOptions are the ff options of every command: BOXRUN_* env vars and an
// optional config file.
func ffOptions() []ff.Option {
	return []ff.Option{
		ff.WithEnvVarPrefix("BOXRUN"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(ff.PlainParser),
		ff.WithIgnoreUndefined(true), // a config file may hold flags of other commands
	}
}

func newRootCmd(cfg *rootConfig) *ffcli.Command {
	fs := cfg.newFlagSet("boxrun")
	showVersion := fs.Bool("version", false, "print the version and exit")
	root := &ffcli.Command{
		Name:       "boxrun",
		ShortUsage: "boxrun [flags] <command> [args...]",
		ShortHelp:  "BoxRun: sandboxes (boxes) from OCI images, with streamed exec, files and terminals",
		FlagSet:    fs,
		Options:    ffOptions(),
		Exec: func(ctx context.Context, args []string) error {
			if *showVersion {
				return printVersion(cfg)
			}
			if len(args) == 0 {
				return flag.ErrHelp
			}
			return usagef("unknown command %q (see boxrun --help)", args[0])
		},
	}
	root.Subcommands = []*ffcli.Command{
		newServeCmd(cfg),
		newMCPCmd(cfg),
		newCreateCmd(cfg),
		newLsCmd(cfg, "ls"),
		newLsCmd(cfg, "list"),
		newInspectCmd(cfg),
		newEgressCmd(cfg),
		newExecCmd(cfg),
		newShellCmd(cfg),
		newAttachCmd(cfg),
		newCpCmd(cfg),
		newStopCmd(cfg),
		newStartCmd(cfg),
		newRmCmd(cfg),
		newCheckpointCmd(cfg),
		newSnapshotsCmd(cfg),
		newRestoreCmd(cfg),
		newForkCmd(cfg),
		newHibernateCmd(cfg),
		newRunCmd(cfg),
		newGCCmd(cfg),
		newInfoCmd(cfg),
		newImagesCmd(cfg),
		newEventsCmd(cfg),
		newStatsCmd(cfg),
		newWatchCmd(cfg),
		newCompletionCmd(cfg, root),
		newDoctorCmd(cfg),
		newVersionCmd(cfg),
	}
	return root
}

// report prints err the way the original CLI does (spec §14.1) and returns
// the error for exitCode.
func (c *rootConfig) report(err error) error {
	var ee *ExitError
	var ue *usageError
	var be *boxrun.Error
	var re *reportedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return err // printed where it happened
	case errors.Is(err, flag.ErrHelp):
		return nil // ffcli printed the usage
	case errors.As(err, &ee):
		return err
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "Error: %s\n", ue.msg)
		return err
	case errors.Is(err, client.ErrUnavailable):
		fmt.Fprintln(c.stderr, "Error: Cannot connect to BoxRun server.")
		fmt.Fprintln(c.stderr, c.dim("  Start it with: boxrun serve"))
		fmt.Fprintln(c.stderr, c.dim("  ("+err.Error()+")"))
	case errors.As(err, &be):
		fmt.Fprintf(c.stderr, "Error: [%s] %s\n", be.Code, be.Message)
		if hint := hintFor(be.Code); hint != "" {
			fmt.Fprintln(c.stderr, c.dim(hint))
		}
	default:
		fmt.Fprintf(c.stderr, "Error: %s\n", err)
	}
	return &reportedError{err}
}

// hintFor returns the original CLI's hint line for an error code.
func hintFor(code boxrun.Code) string {
	switch code {
	case boxrun.CodeBoxNotRunning:
		return "  Hint: Start the box first with: boxrun start <box>"
	case boxrun.CodeBoxAlreadyRunning:
		return "  Hint: Stop it first with: boxrun stop <box>"
	case boxrun.CodeNameAlreadyExists:
		return "  Hint: Use a different name, or remove the existing box: boxrun rm <name> --force"
	case boxrun.CodeBoxNotFound:
		return "  Hint: List available boxes with: boxrun ls"
	case boxrun.CodeImagePullFailed:
		return "  Hint: No registry access? Build a local image with: boxrun images build-busybox DIR (then use oci:DIR)"
	case boxrun.CodeResourceExceeded:
		return "  Hint: Stop running boxes (boxrun ls -s running) or ask for less with --cpus/--memory"
	}
	return ""
}

// isTTY reports whether w is a terminal.
func isTTY(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ANSI styling, only when stdout is a terminal (spec §14.1).
func (c *rootConfig) style(code, s string) string {
	if !isTTY(c.stdout) {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (c *rootConfig) dim(s string) string  { return c.style("2", s) }
func (c *rootConfig) bold(s string) string { return c.style("1", s) }

// colorStatus colours a box status and pads it to width visible cells.
func (c *rootConfig) colorStatus(s boxrun.BoxStatus, width int) string {
	pad := ""
	if n := width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	code := ""
	switch s {
	case boxrun.StatusRunning:
		code = "32"
	case boxrun.StatusStopped, boxrun.StatusError:
		code = "31"
	case boxrun.StatusCreating:
		code = "33"
	}
	if code == "" {
		return string(s) + pad
	}
	return c.style(code, string(s)) + pad
}

func printVersion(cfg *rootConfig) error {
	fmt.Fprintf(cfg.stdout, "boxrun %s (go)\n", version)
	return nil
}

func newVersionCmd(cfg *rootConfig) *ffcli.Command {
	return &ffcli.Command{
		Name:       "version",
		ShortUsage: "boxrun version",
		ShortHelp:  "print the version",
		FlagSet:    cfg.newFlagSet("version"),
		Options:    ffOptions(),
		Exec:       func(context.Context, []string) error { return printVersion(cfg) },
	}
}
