//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/boxrun/boxrun/driver/qemu/proto"
	"github.com/boxrun/boxrun/internal/ptyutil"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// agent is the state of PID 1.
type agent struct {
	start time.Time

	mu      sync.Mutex // guards waiters, procs, setupDone
	waiters map[int]chan unix.WaitStatus
	procs   map[string]*proc
	setup   *proto.Setup // non-nil once the rootfs is mounted
}

func newAgent() *agent {
	return &agent{
		start:   time.Now(),
		waiters: map[int]chan unix.WaitStatus{},
		procs:   map[string]*proc{},
	}
}

// reap collects every exited child: PID 1 inherits all orphans. Statuses
// of processes started by exec are handed to their waiter. Registration
// happens under mu in the same critical section as the fork, so a status
// is never dispatched before its waiter exists.
func (a *agent) reap() {
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, unix.SIGCHLD)
	tick := time.NewTicker(time.Second)
	for {
		select {
		case <-sigc:
		case <-tick.C:
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			a.mu.Lock()
			if ch, ok := a.waiters[pid]; ok {
				delete(a.waiters, pid)
				ch <- ws
			}
			a.mu.Unlock()
		}
	}
}

// serve accepts host connections forever, one at a time.
func (a *agent) serve() {
	dev, err := findPort()
	if err != nil {
		log.Printf("%v", err)
		powerOff()
	}
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Printf("open %s: %v", dev, err)
		powerOff()
	}
	var carry []byte
	for {
		first := handshake(fd, carry)
		conn := &portConn{fd: fd, prefix: first}
		sess, err := yamux.Server(conn, proto.Config())
		if err != nil {
			log.Printf("session: %v", err)
			continue
		}
		log.Printf("host connected")
		a.session(sess)
		conn.Close()
		carry = conn.next
		log.Printf("host disconnected")
	}
}

// session serves one host connection until it ends, then kills the execs
// it started: nobody can collect their output any more.
func (a *agent) session(sess *yamux.Session) {
	var mine syncMap // exec ID → struct{}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			log.Printf("session ended: %v", err)
			break
		}
		go a.handle(st, &mine)
	}
	sess.Close()
	mine.Range(func(k, _ any) bool {
		a.mu.Lock()
		p := a.procs[k.(string)]
		a.mu.Unlock()
		if p != nil {
			unix.Kill(-p.pid, unix.SIGKILL)
		}
		return true
	})
}

func (a *agent) handle(st *yamux.Stream, mine *syncMap) {
	defer st.Close()
	var req proto.Request
	if err := proto.ReadJSON(st, proto.FrameRequest, &req); err != nil {
		return
	}
	switch req.Op {
	case proto.OpPing:
		proto.WriteJSON(st, proto.FrameResult, a.info())
	case proto.OpSetup:
		res := a.info()
		if err := a.doSetup(req.Setup); err != nil {
			res = fail(proto.KindOther, err)
		}
		proto.WriteJSON(st, proto.FrameResult, res)
	case proto.OpExec:
		a.exec(st, &req, mine)
	case proto.OpSignal:
		proto.WriteJSON(st, proto.FrameResult, a.signal(&req))
	case proto.OpResize:
		proto.WriteJSON(st, proto.FrameResult, a.resize(&req))
	case proto.OpCopyIn:
		proto.WriteJSON(st, proto.FrameResult, copyIn(st, req.Path))
	case proto.OpCopyOut:
		res := copyOut(st, req.Path)
		proto.WriteFrame(st, proto.FrameEOF, nil)
		proto.WriteJSON(st, proto.FrameResult, res)
	case proto.OpShutdown:
		proto.WriteJSON(st, proto.FrameResult, proto.Result{})
		st.Close()
		time.Sleep(50 * time.Millisecond) // let the result reach the host
		unix.Kill(-1, unix.SIGKILL)
		unix.Sync()
		unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		powerOff()
	default:
		proto.WriteJSON(st, proto.FrameResult, fail(proto.KindInvalid, fmt.Errorf("unknown op %q", req.Op)))
	}
}

func (a *agent) info() proto.Result {
	return proto.Result{Info: proto.AgentInfo, Uptime: time.Since(a.start).Milliseconds()}
}

func fail(kind string, err error) proto.Result {
	return proto.Result{Error: err.Error(), Kind: kind}
}

func (a *agent) signal(req *proto.Request) proto.Result {
	a.mu.Lock()
	p := a.procs[req.ID]
	a.mu.Unlock()
	if p == nil {
		return fail(proto.KindNotFound, fmt.Errorf("exec %s not found", req.ID))
	}
	if err := unix.Kill(-p.pid, unix.Signal(req.Signal)); err != nil && err != unix.ESRCH {
		return fail(proto.KindOther, err)
	}
	return proto.Result{}
}

func (a *agent) resize(req *proto.Request) proto.Result {
	a.mu.Lock()
	p := a.procs[req.ID]
	a.mu.Unlock()
	if p == nil {
		return fail(proto.KindNotFound, fmt.Errorf("exec %s not found", req.ID))
	}
	if p.tty == nil {
		return fail(proto.KindInvalid, fmt.Errorf("exec %s has no terminal", req.ID))
	}
	if err := ptyutil.SetSize(p.tty, req.Rows, req.Cols); err != nil {
		return fail(proto.KindOther, err)
	}
	return proto.Result{}
}

// frameWriter serializes frames from several goroutines onto one stream.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) frame(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.WriteFrame(f.w, typ, p)
}

func (f *frameWriter) json(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.frame(typ, b)
}

// syncMap is the set of exec IDs a session started.
type syncMap = sync.Map
