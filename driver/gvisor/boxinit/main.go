// Command boxinit is the static helper the gvisor driver bind-mounts
// read-only at /.boxrun/init in every box. On the host it is installed as
// "boxrun-init". Build it with CGO_ENABLED=0 so it runs in any image.
//
// Modes (the first argument):
//
//	init [GRACE]   PID 1 of the box: reaps orphans; on SIGTERM or SIGINT it
//	               sends SIGTERM to every other process, waits until they are
//	               gone or GRACE (a Go duration, default 3s) passed, and exits 0.
//	tar-x DIR      extracts the tar stream on stdin into DIR (created if needed).
//	tar-c PATH     writes a tar stream of PATH (file or directory) to stdout.
//
// One mode runs on the host, not in a box:
//
//	host-run LOWER UPPER WORK ROOT WORKDIR PROG [ARG...]
//	               mounts the overlay LOWER/UPPER/WORK at ROOT, creates
//	               WORKDIR (and /tmp if missing) in it, and execs PROG. The
//	               rootless driver starts it in a new user and mount
//	               namespace, so the mount lives as long as the sandbox that
//	               PROG (runsc run --detach) leaves in that namespace.
//
// Exit codes: 0 success, 1 failure, 2 usage, 3 unsafe path (an entry leaves
// its destination), 4 not found, 5 malformed tar stream. Errors are written to stderr.
package main

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor/internal/rootfs"
	"github.com/boxrun/boxrun/internal/tarutil"
)

// Exit codes, shared with the driver (copy.go).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitUnsafe   = 3
	exitNotFound = 4
	exitBadTar   = 5
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		args = []string{"init"}
	}
	switch {
	case args[0] == "init":
		grace := 3 * time.Second
		if len(args) > 1 {
			if g, err := time.ParseDuration(args[1]); err == nil {
				grace = g
			}
		}
		runInit(grace)
		return exitOK
	case args[0] == "tar-x" && len(args) == 2:
		return report(tarutil.Extract(context.Background(), bufio.NewReaderSize(os.Stdin, 256<<10), args[1]))
	case args[0] == "host-run" && len(args) >= 7:
		return hostRun(args[1], args[2], args[3], args[4], args[5], args[6:])
	case args[0] == "tar-c" && len(args) == 2:
		w := bufio.NewWriterSize(os.Stdout, 256<<10)
		err := tarutil.Create(context.Background(), w, args[1])
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		return report(err)
	default:
		fmt.Fprintln(os.Stderr, "usage: boxinit init [GRACE] | tar-x DIR | tar-c PATH | host-run LOWER UPPER WORK ROOT WORKDIR PROG [ARG...]")
		return exitUsage
	}
}

// report prints err and maps it to an exit code.
func report(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, tarutil.ErrUnsafePath):
		fmt.Fprintln(os.Stderr, err)
		return exitUnsafe
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, io.ErrUnexpectedEOF):
		fmt.Fprintln(os.Stderr, err)
		return exitBadTar
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintln(os.Stderr, err)
		return exitNotFound
	default:
		fmt.Fprintln(os.Stderr, err)
		return exitFailure
	}
}

// runInit is PID 1: it reaps every child it inherits and returns after a
// stop signal, once the other processes are gone or grace passed.
func runInit(grace time.Duration) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	for sig := range sigs {
		reap()
		if sig == syscall.SIGTERM || sig == syscall.SIGINT {
			break
		}
	}
	_ = syscall.Kill(-1, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && othersAlive() {
		reap()
		time.Sleep(10 * time.Millisecond)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// othersAlive reports whether any process other than this one and zombies
// still exists in the box.
func othersAlive() bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := lastIndex(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		return true
	}
	return false
}

func lastIndex(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// hostRun is the host mode: mount the box's overlay, prepare it, exec prog.
func hostRun(lower, upper, work, root, workdir string, prog []string) int {
	if err := rootfs.MountOverlay(lower, upper, work, root); err != nil {
		fmt.Fprintln(os.Stderr, "boxrun-init host-run:", err)
		return exitFailure
	}
	if err := rootfs.Prepare(root, workdir); err != nil {
		fmt.Fprintln(os.Stderr, "boxrun-init host-run:", err)
		return exitFailure
	}
	err := syscall.Exec(prog[0], prog, os.Environ())
	fmt.Fprintln(os.Stderr, "boxrun-init host-run: exec", prog[0]+":", err)
	return exitFailure
}
