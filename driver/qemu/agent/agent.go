//go:build linux

package main

import (
	"log"
	"sync"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/internal/boxagent"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// agent is the state of PID 1: the shared exec server (package boxagent)
// and what only a VM guest has, the setup of its root filesystem.
type agent struct {
	srv *boxagent.Agent

	mu    sync.Mutex        // guards setup
	setup *agentproto.Setup // non-nil once the rootfs is mounted
}

func newAgent() *agent {
	a := &agent{}
	a.srv = boxagent.New(boxagent.Hooks{
		Ready: func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.setup != nil
		},
		Setup:    a.doSetup,
		Shutdown: shutdown,
	})
	return a
}

// reap collects every exited child (see boxagent.Agent.Reap).
func (a *agent) reap() { a.srv.Reap() }

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
		sess, err := yamux.Server(agentproto.Coalesce(conn), agentproto.Config())
		if err != nil {
			log.Printf("session: %v", err)
			continue
		}
		log.Printf("host connected")
		a.srv.Session(sess)
		conn.Close()
		carry = conn.next
		log.Printf("host disconnected")
	}
}

// shutdown kills everything, syncs and powers off.
func shutdown() {
	unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	powerOff()
}
