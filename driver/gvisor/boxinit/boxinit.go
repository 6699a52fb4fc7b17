// Package boxinit is the in-box side of the gvisor driver, run by the
// boxrun binary in its init role (see IsRole and Main; cmd/boxrun calls
// them first thing). The driver bind-mounts that binary read-only at
// /.boxrun/init in every box and starts it as the box's PID 1, so one
// `go install` of cmd/boxrun (plus runsc) is all a host needs.
//
// Modes (the first argument):
//
//	init [GRACE]   PID 1 of the box. It reaps orphans, keeps the agent
//	               (below) running, and on SIGTERM or SIGINT sends
//	               SIGTERM to every other process, waits until they are
//	               gone or GRACE (a Go duration, default 3s) passed, and
//	               exits 0.
//	agent          the box's agent, started by init: serves package
//	               agentproto (through package boxagent) on the Unix
//	               socket AgentSocket. Init restarts it when it dies.
//	tar-x DIR      extracts the tar stream on stdin into DIR (created if needed).
//	tar-c PATH     writes a tar stream of PATH (file or directory) to stdout.
//
//	install DIR    copies this binary to DIR/init and creates DIR/agent
//	               (0700): the init container of a driver/kubernetes pod.
//	relay          connects stdin and stdout to AgentSocket: how
//	               driver/kubernetes reaches the agent (pods/exec).
//
// tar-x and tar-c are the copy path of `runsc exec`, which the driver
// falls back to when the agent cannot be reached.
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
//
// # The agent channel
//
// The host reaches the agent through a Unix socket the agent creates in
// the box's own agent directory: the driver bind-mounts the host directory
// <box>/agent (mode 0700, root's) at /.boxrun/agent and runs the sandbox
// with runsc --host-uds=create, so the listening socket the agent binds
// there is a real host socket the driver connects to. Why this channel:
//   - it outlives the server: the socket belongs to the sandbox, so a new
//     driver after a restart (or crash) just connects again; the agent's
//     stdio pipes would die with the process that held their other end,
//     and FIFOs would need a reopen dance on every reconnect;
//   - it is per box: the directory is mounted into that box only, no other
//     box has a path to it, and the host side (the driver's state dir) is
//     root-only. --host-uds=create lets a box create sockets on its bind
//     mounts but never connect to a host socket (that would be "open"),
//     so a socket in a volume stays out of reach;
//   - inside the box the directory is root's with mode 0700, so a non-root
//     box user cannot talk to the agent (which runs as root).
//
// The same directory holds each exec's output socket while the driver
// connects to it (see agentproto.Request.HostOut; or, ahead of the exec,
// agentproto.OpPrepareOut): the process then writes its stdout and stderr
// into host sockets, past the agent.
//
// Box root can still kill, stop or replace the agent (its socket is in a
// directory box root can write). The host therefore treats every frame as
// hostile (package agentproto), bounds its waits for answers, and falls
// back to `runsc exec` when the agent does not answer; the agent
// re-creates its socket when it is removed, and init restarts the agent
// when it dies. The agent is a child of init rather than PID 1 itself
// because gVisor lets box root SIGKILL PID 1, which ends the whole box; a
// killed agent's execs (they run in its session) are killed by init when
// it reaps the agent; TTY execs, which lead sessions of their own, are left
// to finish.
package boxinit

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
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor/internal/rootfs"
	"github.com/boxrun/boxrun/internal/boxagent"
	"github.com/boxrun/boxrun/internal/tarutil"
	"golang.org/x/sys/unix"
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

// RoleName is the argv[0] base name under which a binary runs as boxinit
// on the host (host-run); in a box it runs as InitMount.
const RoleName = "boxrun-init"

// InitMount is where the driver mounts the binary inside every box.
const InitMount = "/.boxrun/init"

// AgentDir is the agent's directory inside every box; AgentSocket the
// socket the agent listens on.
const (
	AgentDir    = "/.boxrun/agent"
	AgentSocket = AgentDir + "/agent.sock"
	// AgentHold, while it exists, makes the agent close its listener and
	// remove AgentSocket (the driver creates it before a checkpoint).
	AgentHold = AgentDir + "/hold"
)

// RoleMarker is a string every binary that links this package contains
// (Main prints it in its usage): the driver looks for it to tell whether
// its own executable can run as a box's init.
const RoleMarker = "boxrun-init-role/1: init tar-x tar-c host-run"

// IsRole reports whether a process started as argv0 runs in the init
// role: as InitMount inside a box, or under the base name RoleName.
func IsRole(argv0 string) bool {
	return argv0 == InitMount || filepath.Base(argv0) == RoleName
}

// Main runs the mode args[0] (args excludes argv[0]) and returns the exit
// code. Without arguments it runs init with the default grace.
func Main(args []string) int {
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
	case args[0] == "agent" && len(args) == 1:
		runAgent()
		return exitFailure
	case args[0] == "install" && len(args) == 2:
		return install(args[1], "")
	case args[0] == "install" && len(args) == 3:
		return install(args[1], args[2])
	case args[0] == "relay" && len(args) == 1:
		return relay()
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
		fmt.Fprintln(os.Stderr, RoleMarker)
		fmt.Fprintln(os.Stderr, "usage: boxrun-init init [GRACE] | install DIR [WORKDIR] | tar-x DIR | tar-c PATH | host-run LOWER UPPER WORK ROOT WORKDIR PROG [ARG...]")
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

// agentRestartGap is the least time between two starts of the agent.
const agentRestartGap = 100 * time.Millisecond

// runInit is PID 1: it reaps every child the box leaves to it, keeps the
// agent process running (restarting it when it dies: box root can kill
// it, and PID 1 itself would take the box with it), and returns after a
// stop signal, once the other processes are gone or grace passed.
func runInit(grace time.Duration) {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	st, err := os.Stat(AgentDir)
	withAgent := err == nil && st.IsDir()
	agentPID := 0
	var started time.Time
	tick := time.NewTicker(agentRestartGap)
	defer tick.Stop()
	for stop := false; !stop; {
		select {
		case sig := <-sigs:
			stop = sig == syscall.SIGTERM || sig == syscall.SIGINT
		case <-tick.C:
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if pid == agentPID {
				// The agent died (box root killed it): its execs
				// ran in its session and nobody can reach them now.
				killSession(agentPID)
				agentPID = 0
			}
		}
		if !stop && withAgent && agentPID == 0 && time.Since(started) >= agentRestartGap {
			started = time.Now()
			agentPID = startAgent()
		}
	}
	_ = syscall.Kill(-1, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && othersAlive(agentPID) {
		reap()
		time.Sleep(10 * time.Millisecond)
	}
}

// startAgent starts `InitMount agent` and returns its PID (0 on failure).
func startAgent() int {
	pid, err := syscall.ForkExec(InitMount, []string{InitMount, "agent"}, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "boxrun-init: start agent:", err)
		return 0
	}
	return pid
}

// runAgent is the agent process: it serves agentproto on AgentSocket and
// reaps its own children (the execs).
func runAgent() {
	// One P: the agent's goroutines hand work to each other (the yamux
	// session, each exec's relay, the reaper); inside gVisor every wake-up
	// of another thread is a futex round trip through the Sentry, so with
	// one P most hand-offs stay on one thread (an agent ping measured 2.3
	// ms with GOMAXPROCS=2, 1.5 ms with 1).
	runtime.GOMAXPROCS(1)
	// The stop signal init passes on to every process is not for the
	// agent: it keeps streaming the execs' output until they are gone.
	// Caught, not ignored: an ignored signal would stay ignored in the
	// execs, and a shell cannot trap a signal ignored on entry.
	stopSigs := make(chan os.Signal, 8)
	signal.Notify(stopSigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for range stopSigs {
		}
	}()
	a := boxagent.New(boxagent.Hooks{OutDir: outDir})
	go a.Reap()
	serveAgent(a)
}

// outDir is where execs get their host-connected output sockets: the
// agent directory, whose sockets are host sockets only this box's host
// side can reach (see "The agent channel"). None while the driver holds
// the agent for a checkpoint (gVisor cannot save a host socket).
func outDir() string {
	if held() {
		return ""
	}
	return AgentDir
}

// killSession SIGKILLs every process of the session sid.
func killSession(sid int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		if s, err := unix.Getsid(pid); err == nil && s == sid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
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
// still exists in the box, not counting the process except.
func othersAlive(except int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == except {
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
