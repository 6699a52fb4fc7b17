package boxinit

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/internal/boxagent"
)

// relistenEvery is how often the agent checks that its socket is still
// the one it listens on (box root may remove or replace it).
const relistenEvery = 500 * time.Millisecond

// holdPoll is how often the agent looks for AgentHold.
const holdPoll = 100 * time.Millisecond

// serveAgent listens on AgentSocket and serves every connection. When the socket file goes away or is replaced, the agent
// listens again on a fresh one.
func serveAgent(a *boxagent.Agent) {
	for {
		l, ino, err := listen()
		if err != nil {
			fmt.Fprintln(os.Stderr, "boxrun-init: agent:", err)
			time.Sleep(relistenEvery)
			continue
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go a.Accept(c)
			}
		}()
		for n := 0; !held(); n++ {
			if n%int(relistenEvery/holdPoll) == 0 && !sameSocket(ino) {
				break
			}
			time.Sleep(holdPoll)
		}
		l.Close()
		if held() {
			// The driver is about to checkpoint the box: gVisor cannot
			// save a socket bound on the host, so none may exist until
			// the hold goes (on the host after the checkpoint, or at
			// once in a box restored with a fresh agent directory).
			// Prepared output pairs are host sockets too; they go
			// before the agent socket, whose removal is what the
			// driver waits for.
			a.DropOutPairs(nil)
			if sameSocket(ino) {
				_ = os.Remove(AgentSocket)
			}
			for held() {
				time.Sleep(holdPoll)
			}
		}
	}
}

// listen binds a fresh socket at AgentSocket (removing whatever is there)
// readable only by root, and returns its inode.
func listen() (net.Listener, uint64, error) {
	_ = os.Remove(AgentSocket)
	old := syscall.Umask(0o077)
	l, err := net.Listen("unix", AgentSocket)
	syscall.Umask(old)
	if err != nil {
		return nil, 0, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	var st syscall.Stat_t
	if err := syscall.Lstat(AgentSocket, &st); err != nil {
		l.Close()
		return nil, 0, err
	}
	return l, st.Ino, nil
}

// held reports whether the driver asks the agent not to listen (AgentHold
// exists).
func held() bool {
	_, err := os.Lstat(AgentHold)
	return err == nil
}

// sameSocket reports whether AgentSocket is still the socket of inode ino.
func sameSocket(ino uint64) bool {
	var st syscall.Stat_t
	return syscall.Lstat(AgentSocket, &st) == nil && st.Ino == ino && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}
