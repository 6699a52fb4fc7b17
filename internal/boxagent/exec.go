//go:build linux

package boxagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/internal/ptyutil"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// Output left in the pipes after the process exited is drained until the
// pipes stay empty for drainIdle, and never longer than drainMax: a
// background child that keeps the pipe open must not hold the exec open.
const (
	drainIdle = 50 * time.Millisecond
	drainMax  = 2 * time.Second
)

// outPipeSize is the size asked for the stdout pipe of an exec.
const outPipeSize = 1 << 20

// proc is a running exec.
type proc struct {
	pid int
	tty *os.File // pty master (non-blocking, see ptyutil.Open); nil without TTY
}

func bgCtx() context.Context { return context.Background() }

// defaultPath is the PATH an exec without one searches.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// exec runs one command and streams it over st.
func (a *Agent) exec(st *yamux.Stream, req *agentproto.Request, mine *sync.Map) {
	fw := &frameWriter{w: st}
	if _, dup := mine.LoadOrStore(req.ID, struct{}{}); dup || req.ID == "" {
		fw.json(agentproto.FrameResult, fail(agentproto.KindInvalid, fmt.Errorf("bad exec ID %q", req.ID)))
		return
	}
	defer mine.Delete(req.ID)

	var hostOut []*os.File
	paired := false
	if req.OutPair != "" && !req.TTY {
		if pr, ok := a.takePair(req.OutPair, mine); ok {
			hostOut, paired = pr.files[:], true
		}
	}
	if dir := a.outDir(req); dir != "" && !paired {
		if l, err := listenOut(dir, req.ID); err == nil {
			if fw.json(agentproto.FrameResult, agentproto.Result{HostOut: true}) != nil {
				l.close()
				return
			}
			o, e, err := l.accept()
			if err != nil {
				fw.json(agentproto.FrameResult, fail(agentproto.KindOther, err))
				return
			}
			hostOut = []*os.File{o, e}
		}
	}
	p, outs, stdin, ch, err := a.spawn(req, hostOut)
	if err != nil {
		kind := agentproto.KindOther
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			kind = agentproto.KindNotFound
		}
		fw.json(agentproto.FrameResult, fail(kind, err))
		return
	}
	a.mu.Lock()
	a.procs[req.ID] = p
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.procs, req.ID)
		a.mu.Unlock()
	}()
	fw.json(agentproto.FrameResult, agentproto.Result{PID: p.pid, OutPair: paired})

	var exited atomic.Bool
	var exitTime atomic.Int64

	// stdin: FrameData and FrameEOF from the host. A terminal cannot be
	// half-closed: its EOF is the EOF character (see ptyutil.EOFWriter).
	go func() {
		var in io.WriteCloser = stdin
		if req.TTY {
			in = &ptyutil.EOFWriter{W: stdin}
		}
		defer func() {
			if in != nil && !req.TTY {
				in.Close()
			}
		}()
		for {
			typ, payload, err := agentproto.ReadFrame(st)
			if err != nil {
				// The host abandoned the exec (closed or reset its
				// stream) while it runs: nobody reads its output.
				if !exited.Load() {
					killExec(p.pid, unix.SIGKILL, true)
				}
				return
			}
			switch typ {
			case agentproto.FrameData:
				if in != nil {
					if _, err := in.Write(payload); err != nil && !req.TTY {
						in.Close()
						in = nil
					}
				}
			case agentproto.FrameEOF:
				if in != nil {
					in.Close() // for a terminal: writes the EOF character
					in = nil
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for i, f := range outs {
		typ := agentproto.FrameStdout
		if i == 1 {
			typ = agentproto.FrameStderr
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			buf := make([]byte, agentproto.DataChunk)
			for {
				n, err := f.Read(buf)
				if n > 0 {
					if fw.frame(typ, buf[:n]) != nil {
						return
					}
					if exited.Load() {
						if time.Since(time.Unix(0, exitTime.Load())) > drainMax {
							return
						}
						f.SetReadDeadline(time.Now().Add(drainIdle))
					}
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// A loaded agent may reach the read after the
					// drain deadline passed, and Go then does not read
					// at all: take what the exited process left in the
					// pipe without waiting.
					ptyutil.ReadAvailable(f, buf, func(b []byte) bool { return fw.frame(typ, b) == nil })
				}
				if err != nil {
					return
				}
			}
		}()
	}
	ws := <-ch
	exitTime.Store(time.Now().UnixNano())
	exited.Store(true)
	for _, f := range outs {
		f.SetReadDeadline(time.Now().Add(drainIdle))
	}
	wg.Wait()
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	fw.json(agentproto.FrameExit, agentproto.Exit{Code: code})
}

// outDir returns the directory for the output socket of req, or "" when
// its output is relayed in frames.
func (a *Agent) outDir(req *agentproto.Request) string {
	if !req.HostOut || req.TTY || a.hooks.OutDir == nil {
		return ""
	}
	return a.hooks.OutDir()
}

// spawn forks the process. It returns the output files to stream (stdout
// and stderr, or the pty master; none with hostOut, which become the
// process's stdout and stderr), the stdin writer (nil for none) and the
// channel that receives the wait status. It closes hostOut.
func (a *Agent) spawn(req *agentproto.Request, hostOut []*os.File) (p *proc, outs []*os.File, stdin *os.File, ch chan unix.WaitStatus, err error) {
	defer func() {
		for _, f := range hostOut {
			f.Close()
		}
	}()
	if len(req.Cmd) == 0 {
		return nil, nil, nil, nil, errors.New("empty command")
	}
	dir := req.Dir
	if dir == "" {
		dir = "/"
	}
	// Like runc, create a missing working directory.
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && !req.StrictDir {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("working directory %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("working directory %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, nil, nil, nil, fmt.Errorf("working directory %s: %w", dir, unix.ENOTDIR)
	}
	prog, err := lookPath(req.Cmd[0], req.Env, dir)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	attr := &syscall.ProcAttr{Dir: dir, Env: req.Env, Sys: &syscall.SysProcAttr{}}
	var childFiles []*os.File
	p = &proc{}
	if req.TTY {
		master, slave, err := ptyutil.Open(req.Rows, req.Cols)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("open pty: %w", err)
		}
		attr.Files = []uintptr{slave.Fd(), slave.Fd(), slave.Fd()}
		attr.Sys.Setsid = true
		attr.Sys.Setctty = true
		attr.Sys.Ctty = 0
		childFiles = []*os.File{slave}
		p.tty = master
		outs = []*os.File{master}
		stdin = master
	} else if hostOut != nil {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		attr.Files = []uintptr{inR.Fd(), hostOut[0].Fd(), hostOut[1].Fd()}
		attr.Sys.Setpgid = true
		childFiles = []*os.File{inR}
		stdin = inW
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, nil, err
		}
		// A large pipe lets a writer run ahead of the agent by whole
		// frames (one read, one frame, instead of many small ones).
		// (Through SyscallConn: Fd would make outR blocking, and the
		// drain needs its read deadlines.)
		if rc, err := outR.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, outPipeSize) })
		}
		attr.Files = []uintptr{inR.Fd(), outW.Fd(), errW.Fd()}
		attr.Sys.Setpgid = true
		childFiles = []*os.File{inR, outW, errW}
		outs = []*os.File{outR, errR}
		stdin = inW
	}
	if u := req.User; u != nil {
		attr.Sys.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
	}
	argv := append([]string{}, req.Cmd...)
	ch = make(chan unix.WaitStatus, 1)
	a.mu.Lock()
	pid, err := syscall.ForkExec(prog, argv, attr)
	if err == nil {
		a.waiters[pid] = ch
	}
	a.mu.Unlock()
	if err == nil {
		select {
		case a.forked <- struct{}{}:
		default:
		}
	}
	for _, f := range childFiles {
		f.Close()
	}
	if err != nil {
		for _, f := range outs {
			f.Close()
		}
		if !req.TTY {
			stdin.Close()
		}
		return nil, nil, nil, nil, fmt.Errorf("start %s: %w", req.Cmd[0], err)
	}
	p.pid = pid
	return p, outs, stdin, ch, nil
}

// lookPath finds prog like execvp would, with PATH taken from env.
func lookPath(prog string, env []string, dir string) (string, error) {
	if strings.Contains(prog, "/") {
		path := prog
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		if err := executable(path); err != nil {
			return "", fmt.Errorf("exec %q: %w", prog, err)
		}
		return path, nil
	}
	pathVar := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		path := filepath.Join(d, prog)
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		if executable(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH: %w", prog, fs.ErrNotExist)
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}
