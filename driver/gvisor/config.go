package gvisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/boxrun/boxrun/internal/binpath"
)

// Names of the host binaries the driver needs, and the environment variables
// that point at them.
const (
	RunscName = "runsc"       // runsc binary
	InitName  = "boxrun-init" // the static in-box helper (package boxinit)
	RunscEnv  = "BOXRUN_RUNSC"
	InitEnv   = "BOXRUN_INIT"

	// InitPackage is the import path of the in-box helper, for BuildInit.
	InitPackage = "github.com/boxrun/boxrun/driver/gvisor/boxinit"
)

// ErrUnsupported is wrapped by New when the driver cannot run on this host
// (runsc or the helper missing, or not root and no user namespaces). Callers, tests included, can
// match it with errors.Is to skip or pick another driver.
var ErrUnsupported = errors.New("gvisor: unsupported on this host")

// Config configures a Driver. The zero value of every field except Dir is
// usable.
type Config struct {
	// Dir is the driver's state directory (required). The Manager passes
	// <managerdir>/gvisor. It is created if missing and must not be shared
	// with another Driver running at the same time.
	Dir string

	// Runsc is the path of the runsc binary. If empty: $BOXRUN_RUNSC, else
	// <Dir>/../bin/runsc, else "runsc" next to os.Executable(), else
	// "runsc" in PATH. Build it from the repository with
	// `cd tools && CGO_ENABLED=0 go build -o ../bin/runsc gvisor.dev/gvisor/runsc`.
	Runsc string

	// InitPath is the path of the static in-box helper (package boxinit).
	// If empty: $BOXRUN_INIT, else <Dir>/../bin/boxrun-init, else
	// "boxrun-init" next to os.Executable(), else in PATH. The boxrun CLI
	// ships it next to its own binary; tests build it with BuildInit.
	InitPath string

	// Platform is runsc's --platform. Default "systrap".
	Platform string

	// StopGrace is how long Stop lets the processes of a box exit after
	// SIGTERM before the sandbox is destroyed. Default 3s.
	StopGrace time.Duration

	// NetPool is the IPv4 range the links of networked boxes are allocated
	// from (one /30 per running box; shared with other drivers on the host).
	// Default 10.223.0.0/16.
	NetPool string

	// DNS lists the upstream resolvers ("ip" or "ip:port") that the
	// resolver of networked boxes forwards allowed lookups to. Default: the
	// nameservers of the host's /etc/resolv.conf.
	DNS []string

	// Logger receives debug logs of every runsc call. Default: discard.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultPlatform  = "systrap"
	DefaultStopGrace = 3 * time.Second
)

// findBinary resolves a host binary by the lookup order documented on
// Config.
func findBinary(explicit, envVar, dir, name string) (string, error) {
	p, err := binpath.Find(binpath.Spec{Name: name, Explicit: explicit, EnvVar: envVar, Dir: dir, Executable: true})
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrUnsupported)
	}
	return p, nil
}

const (
	buildRunscHint = "build it from the boxrun repository with `cd tools && CGO_ENABLED=0 go build -o ../bin/runsc gvisor.dev/gvisor/runsc` and set $BOXRUN_RUNSC or Config.Runsc"
	buildInitHint  = "build it from the boxrun repository with `CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/boxrun-init ./driver/gvisor/boxinit` and set $BOXRUN_INIT or Config.InitPath"
)

// BuildInit builds the static in-box helper into dst with the go tool in
// PATH (CGO_ENABLED=0, stripped). It must run inside the boxrun module
// (tests, CI, release scripts); the driver itself never builds anything.
func BuildInit(ctx context.Context, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", dst, InitPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gvisor: build %s: %w: %s", InitPackage, err, out)
	}
	return nil
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
