//go:build linux

// Package boxagent is the in-box side of package agentproto: it runs
// execs (pipes or a pty, user, env, working directory), signals their
// process groups or sessions, resizes terminals, and copies tar streams in
// and out, and watches paths with inotify, for every host connection it
// is given.
//
// Two programs embed it, each as PID 1 of its box: the QEMU guest agent
// (driver/qemu/agent, over a virtio-serial port) and the gVisor box's init
// (driver/gvisor/boxinit, over a Unix socket). An Agent must be the only
// reaper of its process (see Reap): it hands exit statuses of its execs to
// their waiters and collects every other child.
//
// Execs belong to the connection that started them: when that connection
// ends (the host closed it, or the host process died), the agent kills
// their process groups and sessions, so no process is left that nobody can
// reach.
package boxagent

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/internal/ptyutil"
	"github.com/boxrun/boxrun/internal/tarutil"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// Hooks are the operations that differ between the agents. A nil hook
// answers its op with KindInvalid.
type Hooks struct {
	// Ready reports whether execs and copies may run (the QEMU agent:
	// after setup). Nil: always.
	Ready func() bool
	// Setup handles agentproto.OpSetup.
	Setup func(*agentproto.Setup) error
	// Shutdown handles agentproto.OpShutdown after the Result was sent.
	Shutdown func()
	// OutDir, when set, returns the directory where an exec that asks
	// for host-connected output (agentproto.Request.HostOut) gets its
	// output socket: one only the box's host side can connect to. It
	// returns "" when none may be created now. Nil: execs relay their
	// output in frames.
	OutDir func() string
}

// Agent serves agentproto. Create it with New; it is safe for concurrent
// use by any number of connections.
type Agent struct {
	start time.Time
	hooks Hooks

	mu      sync.Mutex // guards waiters, procs
	waiters map[int]chan unix.WaitStatus
	procs   map[string]*proc
	forked  chan struct{} // a child was started (wakes Reap)
	pairs   outPairs      // prepared output pairs (outpair.go)
}

// New returns an Agent with hooks.
func New(hooks Hooks) *Agent {
	return &Agent{
		start:   time.Now(),
		hooks:   hooks,
		waiters: map[int]chan unix.WaitStatus{},
		forked:  make(chan struct{}, 1),
		procs:   map[string]*proc{},
	}
}

// Reap collects every exited child forever: PID 1 inherits all orphans.
// Statuses of processes started by exec are handed to their waiter.
// Registration happens under mu in the same critical section as the fork,
// so a status is never dispatched before its waiter exists. Run it in its
// own goroutine before serving.
//
// It waits in wait4 itself (on its own thread) rather than on SIGCHLD:
// inside gVisor a signal reaches a Go program through the runtime's signal
// goroutine and a channel, which cost milliseconds per exec (measured: the
// exit of /bin/true reached its exec 3.5–8 ms after the fork returned).
// With no child to wait for it sleeps until the next fork, a SIGCHLD or a
// tick.
func (a *Agent) Reap() {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGCHLD)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case pid > 0:
			a.deliver(pid, ws)
		case errors.Is(err, unix.EINTR):
		default: // ECHILD: nothing to wait for until a child appears
			select {
			case <-a.forked:
			case <-sigc:
			case <-tick.C:
			}
		}
	}
}

// deliver hands the status of pid to its waiter, if it has one.
func (a *Agent) deliver(pid int, ws unix.WaitStatus) {
	a.mu.Lock()
	if ch, ok := a.waiters[pid]; ok {
		delete(a.waiters, pid)
		ch <- ws
	}
	a.mu.Unlock()
}

// handshakeTimeout bounds how long Accept waits for a host's Hello.
const handshakeTimeout = 10 * time.Second

// Accept runs the agent's side of the handshake (see agentproto.Hello) on
// a fresh connection and serves it until it ends. It closes conn.
func (a *Agent) Accept(conn io.ReadWriteCloser) {
	defer conn.Close()
	if dl, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = dl.SetReadDeadline(time.Now().Add(handshakeTimeout))
		defer func() { _ = dl.SetReadDeadline(time.Time{}) }()
	}
	magic := agentproto.HelloMagic()
	hello := make([]byte, len(magic)+agentproto.NonceLen)
	if _, err := io.ReadFull(conn, hello); err != nil || string(hello[:len(magic)]) != string(magic) {
		return
	}
	nonce := string(hello[len(magic):])
	for _, c := range nonce {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return
		}
	}
	if _, err := conn.Write(agentproto.Ready(nonce)); err != nil {
		return
	}
	if dl, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = dl.SetReadDeadline(time.Time{})
	}
	sess, err := yamux.Server(agentproto.Coalesce(conn), agentproto.Config())
	if err != nil {
		return
	}
	a.Session(sess)
}

// Session serves one host connection until it ends, then kills the execs
// it started (their process groups and sessions): nobody can collect their
// output any more.
func (a *Agent) Session(sess *yamux.Session) {
	var mine sync.Map // exec ID → struct{}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		go a.handle(st, &mine)
	}
	sess.Close()
	a.DropOutPairs(&mine)
	mine.Range(func(k, _ any) bool {
		a.mu.Lock()
		p := a.procs[k.(string)]
		a.mu.Unlock()
		if p != nil {
			killExec(p.pid, unix.SIGKILL, true)
		}
		return true
	})
}

func (a *Agent) handle(st *yamux.Stream, mine *sync.Map) {
	defer st.Close()
	var req agentproto.Request
	if err := agentproto.ReadJSON(st, agentproto.FrameRequest, &req); err != nil {
		return
	}
	ready := a.hooks.Ready == nil || a.hooks.Ready()
	switch req.Op {
	case agentproto.OpPing:
		agentproto.WriteJSON(st, agentproto.FrameResult, a.info())
	case agentproto.OpSetup:
		res := a.info()
		if a.hooks.Setup == nil {
			res = fail(agentproto.KindInvalid, errors.New("setup is not supported by this agent"))
		} else if err := a.hooks.Setup(req.Setup); err != nil {
			res = fail(agentproto.KindOther, err)
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, res)
	case agentproto.OpExec:
		if !ready {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		a.exec(st, &req, mine)
	case agentproto.OpPrepareOut:
		if !ready {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		a.prepareOut(st, &req, mine)
	case agentproto.OpSignal:
		agentproto.WriteJSON(st, agentproto.FrameResult, a.signal(&req))
	case agentproto.OpResize:
		agentproto.WriteJSON(st, agentproto.FrameResult, a.resize(&req))
	case agentproto.OpCopyIn:
		if !ready {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, copyIn(st, req.Path))
	case agentproto.OpCopyOut:
		if !ready {
			agentproto.WriteFrame(st, agentproto.FrameEOF, nil)
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		res := copyOut(st, req.Path)
		agentproto.WriteFrame(st, agentproto.FrameEOF, nil)
		agentproto.WriteJSON(st, agentproto.FrameResult, res)
	case agentproto.OpStats:
		st2 := Stats()
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{Stats: &st2})
	case agentproto.OpWatch:
		if !ready {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		watch(st, &req)
	case agentproto.OpList:
		if !ready {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindOther, errors.New("box is not set up")))
			return
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, list(req.Path))
	case agentproto.OpShutdown:
		if a.hooks.Shutdown == nil {
			agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindInvalid, errors.New("shutdown is not supported by this agent")))
			return
		}
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{})
		st.Close()
		time.Sleep(50 * time.Millisecond) // let the result reach the host
		a.hooks.Shutdown()
	default:
		agentproto.WriteJSON(st, agentproto.FrameResult, fail(agentproto.KindInvalid, fmt.Errorf("unknown op %q", req.Op)))
	}
}

func (a *Agent) info() agentproto.Result {
	return agentproto.Result{Info: agentproto.AgentInfo, Uptime: time.Since(a.start).Milliseconds()}
}

func fail(kind string, err error) agentproto.Result {
	return agentproto.Result{Error: err.Error(), Kind: kind}
}

func (a *Agent) signal(req *agentproto.Request) agentproto.Result {
	a.mu.Lock()
	p := a.procs[req.ID]
	a.mu.Unlock()
	if p == nil {
		return fail(agentproto.KindNotFound, fmt.Errorf("exec %s not found", req.ID))
	}
	if req.Signal <= 0 || req.Signal > 64 {
		return fail(agentproto.KindInvalid, fmt.Errorf("bad signal %d", req.Signal))
	}
	if err := killExec(p.pid, unix.Signal(req.Signal), req.Session); err != nil {
		return fail(agentproto.KindOther, err)
	}
	return agentproto.Result{}
}

// killExec sends sig to the process group pid leads and, with session, to
// every process of the session pid leads (a shell's background jobs run in
// groups of their own).
func killExec(pid int, sig unix.Signal, session bool) error {
	err := unix.Kill(-pid, sig)
	if err == unix.ESRCH {
		err = nil
	}
	if !session {
		return err
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		q, cerr := strconv.Atoi(e.Name())
		if cerr != nil || q <= 1 {
			continue
		}
		if sid, serr := unix.Getsid(q); serr == nil && sid == pid {
			_ = unix.Kill(q, sig)
		}
	}
	return err
}

func (a *Agent) resize(req *agentproto.Request) agentproto.Result {
	a.mu.Lock()
	p := a.procs[req.ID]
	a.mu.Unlock()
	if p == nil {
		return fail(agentproto.KindNotFound, fmt.Errorf("exec %s not found", req.ID))
	}
	if p.tty == nil {
		return fail(agentproto.KindInvalid, fmt.Errorf("exec %s has no terminal", req.ID))
	}
	if err := ptyutil.SetSize(p.tty, req.Rows, req.Cols); err != nil {
		return fail(agentproto.KindOther, err)
	}
	return agentproto.Result{}
}

// frameWriter serializes frames from several goroutines onto one stream.
// Frames are built in one reused buffer (a data frame is up to
// agentproto.DataChunk bytes: allocating each would keep the agent's
// garbage collector busy).
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (f *frameWriter) frame(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	f.buf, err = agentproto.AppendFrame(f.w, f.buf, typ, p)
	return err
}

func (f *frameWriter) json(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.frame(typ, b)
}

// copyIn extracts the tar stream of FrameData frames into dst.
func copyIn(st io.Reader, dst string) agentproto.Result {
	dr := &agentproto.DataReader{R: st}
	if !filepath.IsAbs(dst) {
		return fail(agentproto.KindInvalid, fmt.Errorf("copy in: %q is not absolute", dst))
	}
	err := tarutil.Extract(bgCtx(), dr, dst)
	_, _ = io.Copy(io.Discard, dr)
	if err != nil {
		return fail(errKind(err), err)
	}
	return agentproto.Result{}
}

// copyOut writes a tar stream of src as FrameData frames (no FrameEOF).
func copyOut(st io.Writer, src string) agentproto.Result {
	if !filepath.IsAbs(src) {
		return fail(agentproto.KindInvalid, fmt.Errorf("copy out: %q is not absolute", src))
	}
	if _, err := os.Lstat(src); err != nil {
		return fail(errKind(err), err)
	}
	if err := tarutil.Create(bgCtx(), agentproto.DataWriter{W: st, Typ: agentproto.FrameData}, src); err != nil {
		return fail(errKind(err), err)
	}
	return agentproto.Result{}
}

func errKind(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return agentproto.KindNotFound
	case errors.Is(err, tarutil.ErrUnsafePath), errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, agentproto.ErrProtocol):
		return agentproto.KindInvalid
	}
	return agentproto.KindOther
}
