//go:build linux

package boxagent

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// maxPairsPerSession bounds the prepared output pairs one connection may
// hold (the host keeps one ready).
const maxPairsPerSession = 2

// outPair is an output socket pair prepared for a later exec (see
// agentproto.OpPrepareOut): the host's stdout and stderr connections,
// accepted and tagged, owned by the session that prepared it.
type outPair struct {
	files [2]*os.File
	owner *sync.Map // the preparing session's exec set (its identity)
}

func (p outPair) close() {
	for _, f := range p.files {
		f.Close()
	}
}

// outPairs are the prepared output pairs by token.
type outPairs struct {
	mu       sync.Mutex
	m        map[string]outPair
	inflight atomic.Int32 // preparations under way (their sockets exist)
}

// prepareOut serves OpPrepareOut: it listens on the output socket named
// by req.ID, answers Result{HostOut}, accepts the host's two connections
// and keeps them for an exec of the same session (Request.OutPair), then
// answers Result{}. Nothing is prepared while output sockets may not
// exist (OutDir returns "": the driver holds the agent for a checkpoint).
func (a *Agent) prepareOut(st *yamux.Stream, req *agentproto.Request, owner *sync.Map) {
	fw := &frameWriter{w: st}
	dir := ""
	if a.hooks.OutDir != nil {
		dir = a.hooks.OutDir()
	}
	if dir == "" {
		fw.json(agentproto.FrameResult, fail(agentproto.KindInvalid, errors.New("no output sockets in this box now")))
		return
	}
	a.pairs.mu.Lock()
	n := 0
	for _, p := range a.pairs.m {
		if p.owner == owner {
			n++
		}
	}
	_, dup := a.pairs.m[req.ID]
	a.pairs.mu.Unlock()
	if n >= maxPairsPerSession || dup {
		fw.json(agentproto.FrameResult, fail(agentproto.KindInvalid, errors.New("too many prepared output pairs")))
		return
	}
	a.pairs.inflight.Add(1)
	defer a.pairs.inflight.Add(-1)
	l, err := listenOut(dir, req.ID)
	if err != nil {
		fw.json(agentproto.FrameResult, fail(agentproto.KindOther, err))
		return
	}
	if fw.json(agentproto.FrameResult, agentproto.Result{HostOut: true}) != nil {
		l.close()
		return
	}
	// Give up at once when the session ends or the box is to be
	// checkpointed: the listening socket must not outlive either.
	sess := st.Session()
	o, e, err := l.acceptUntil(func() bool { return sess.IsClosed() || a.hooks.OutDir() == "" })
	if err != nil {
		fw.json(agentproto.FrameResult, fail(agentproto.KindOther, err))
		return
	}
	p := outPair{files: [2]*os.File{o, e}, owner: owner}
	a.pairs.mu.Lock()
	if a.pairs.m == nil {
		a.pairs.m = map[string]outPair{}
	}
	if _, dup := a.pairs.m[req.ID]; dup {
		a.pairs.mu.Unlock()
		p.close()
		fw.json(agentproto.FrameResult, fail(agentproto.KindInvalid, errors.New("output pair prepared twice")))
		return
	}
	a.pairs.m[req.ID] = p
	a.pairs.mu.Unlock()
	// A session that ended meanwhile never learns of the pair: drop it
	// (Session drops what it finds when it ends; this covers the pair
	// stored after that).
	if fw.json(agentproto.FrameResult, agentproto.Result{}) != nil {
		if p, ok := a.takePair(req.ID, owner); ok {
			p.close()
		}
	}
}

// takePair removes and returns the pair token prepared by owner. A pair
// whose peer hung up (the connections were not the host's: box root got to
// the socket first and has gone) is closed instead: the exec then gets its
// own socket.
func (a *Agent) takePair(token string, owner *sync.Map) (outPair, bool) {
	a.pairs.mu.Lock()
	p, ok := a.pairs.m[token]
	ok = ok && p.owner == owner
	if ok {
		delete(a.pairs.m, token)
	}
	a.pairs.mu.Unlock()
	if !ok {
		return outPair{}, false
	}
	for _, f := range p.files {
		if !quietFile(f) {
			p.close()
			return outPair{}, false
		}
	}
	return p, true
}

// quietFile reports whether the peer of the socket f is still there,
// without waiting: no hang-up or error pending. (The host half-closes its
// side at once, so end of input alone says nothing.)
func quietFile(f *os.File) bool {
	pfd := []unix.PollFd{{Fd: int32(f.Fd())}} // POLLHUP and POLLERR are always reported
	n, err := unix.Poll(pfd, 0)
	return err == nil && n == 0
}

// dropWait bounds how long DropOutPairs(nil) waits for preparations under
// way to give up (they poll every acceptPoll).
const dropWait = time.Second

// DropOutPairs closes the prepared output pairs of owner, or, with owner
// nil (before a checkpoint: gVisor cannot save a host socket), all of them
// once the preparations under way gave up (OutDir must return "" by then).
func (a *Agent) DropOutPairs(owner *sync.Map) {
	if owner == nil {
		for end := time.Now().Add(dropWait); a.pairs.inflight.Load() > 0 && time.Now().Before(end); {
			time.Sleep(acceptPoll / 4)
		}
	}
	a.pairs.mu.Lock()
	var drop []outPair
	for k, p := range a.pairs.m {
		if owner == nil || p.owner == owner {
			drop = append(drop, p)
			delete(a.pairs.m, k)
		}
	}
	a.pairs.mu.Unlock()
	for _, p := range drop {
		p.close()
	}
}
