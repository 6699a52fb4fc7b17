package gvisor

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrun/boxrun/internal/binpath"
)

// Names of the host binaries the driver needs, and the environment variables
// that point at them.
const (
	RunscName = "runsc"  // runsc binary
	InitName  = "boxrun" // the boxrun binary, whose init role is package boxinit
	RunscEnv  = "BOXRUN_RUNSC"
	InitEnv   = "BOXRUN_INIT"

	// InitPackage is the import path of the binary BuildInit builds: the
	// boxrun command, which runs as a box's init (package boxinit) when
	// started as /.boxrun/init.
	InitPackage = "github.com/boxrun/boxrun/cmd/boxrun"
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

	// InitPath is the path of a statically linked binary that runs package
	// boxinit in its init role: the boxrun command (cmd/boxrun). If empty:
	// $BOXRUN_INIT, else os.Executable() when that binary has the init
	// role linked in (the boxrun command itself), else <Dir>/../bin/boxrun,
	// else "boxrun" next to os.Executable(), else in PATH. Tests build it
	// with BuildInit. A dynamically linked binary (a cgo build, the
	// default of `go install` on a host with a C compiler) cannot start in
	// an image without the host's libc: New refuses it with ErrUnsupported
	// and the command that rebuilds it statically.
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

	// IDBase is the first host user and group ID of the range that box IDs
	// are shifted to as root: files a box creates in its own layer and in
	// read-write volumes are stored as host ID IDBase+n for box ID n, so box
	// root owns nothing of the host's (see "Host files" in the package
	// doc). 0 means DefaultIDBase; negative turns shifting off (box root
	// then creates host-root files, as drivers before it did). Boxes keep
	// the setting they were created with. Ignored rootless.
	IDBase int64

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
	buildInitHint  = "install it with `CGO_ENABLED=0 go install github.com/boxrun/boxrun/cmd/boxrun@latest` (or from the repository: `CGO_ENABLED=0 go build -o bin/boxrun ./cmd/boxrun`) and set $BOXRUN_INIT or Config.InitPath"
)

// BuildInit builds the boxrun command (whose init role is the in-box
// helper) into dst with the go tool in PATH (CGO_ENABLED=0, stripped). It must run inside the boxrun module
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

// findInit resolves Config.InitPath by the order documented there and
// checks that the binary can run in any image.
func findInit(explicit, dir string) (string, error) {
	p := explicit
	if p == "" && os.Getenv(InitEnv) == "" {
		if exe, err := os.Executable(); err == nil && hasInitRole(exe) {
			p = exe
		}
	}
	var err error
	if p == "" {
		p, err = findBinary("", InitEnv, dir, InitName)
	} else {
		p, err = findBinary(p, "", "", InitName)
	}
	if err != nil {
		return "", err
	}
	if interp := elfInterp(p); interp != "" {
		return "", fmt.Errorf("%s is dynamically linked (interpreter %s), so it cannot run as init in an image without the host's libc; rebuild it statically with `CGO_ENABLED=0 go install github.com/boxrun/boxrun/cmd/boxrun@latest` (or `CGO_ENABLED=0 go build ./cmd/boxrun` in the repository): %w", p, interp, ErrUnsupported)
	}
	return filepath.Abs(p)
}

// roleMarker is boxinit.RoleMarker, assembled at run time so that a binary
// that links the driver but not the init role does not contain it.
func roleMarker() []byte {
	return []byte(strings.Join([]string{"boxrun-init-role/1:", "init", "tar-x", "tar-c", "host-run"}, " "))
}

// hasInitRole reports whether the binary at p links package boxinit's
// init role (contains roleMarker).
func hasInitRole(p string) bool {
	b, err := os.ReadFile(p)
	return err == nil && bytes.Contains(b, roleMarker())
}

// elfInterp returns the ELF interpreter (dynamic loader) the binary at p
// needs, "" for a static binary or a file that is not ELF.
func elfInterp(p string) string {
	f, err := elf.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(io.LimitReader(prog.Open(), 4096))
			if err != nil {
				return "?"
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}
