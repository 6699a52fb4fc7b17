//go:build linux

package boxagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"golang.org/x/sys/unix"
)

// outAcceptTimeout bounds the wait for the host's output connections (see
// agentproto.Request.HostOut).
const outAcceptTimeout = 10 * time.Second

// outListener is the listening output socket of one exec.
type outListener struct {
	fd   int
	path string
}

// listenOut binds the output socket of exec id in dir.
func listenOut(dir, id string) (*outListener, error) {
	name, ok := agentproto.OutSocketName(id)
	if !ok {
		return nil, fmt.Errorf("bad exec ID %q for an output socket", id)
	}
	path := filepath.Join(dir, name)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("output socket: %w", err)
	}
	_ = unix.Unlink(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("output socket: bind: %w", err)
	}
	_ = unix.Chmod(path, 0o600)
	if err := unix.Listen(fd, 4); err != nil {
		unix.Close(fd)
		_ = unix.Unlink(path)
		return nil, fmt.Errorf("output socket: listen: %w", err)
	}
	return &outListener{fd: fd, path: path}, nil
}

// close stops listening and removes the socket.
func (l *outListener) close() {
	unix.Close(l.fd)
	_ = unix.Unlink(l.path)
}

// accept waits up to outAcceptTimeout for the host's stdout and stderr
// connections (told apart by their tag byte), then closes the listener.
// Connections with a bad or repeated tag (from anyone else in the box)
// are dropped. The files are blocking, ready to be a process's fd 1 and 2.
func (l *outListener) accept() (stdout, stderr *os.File, err error) {
	return l.acceptUntil(nil)
}

// acceptPoll is how often acceptUntil asks its stop function.
const acceptPoll = 20 * time.Millisecond

// acceptUntil is accept that also gives up as soon as stop (nil: never)
// reports true.
func (l *outListener) acceptUntil(stop func() bool) (stdout, stderr *os.File, err error) {
	defer l.close()
	deadline := time.Now().Add(outAcceptTimeout)
	var got [2]*os.File
	for got[0] == nil || got[1] == nil {
		if stop != nil && stop() {
			break
		}
		wait := deadline
		if next := time.Now().Add(acceptPoll); stop != nil && next.Before(deadline) {
			wait = next
		}
		if err := waitFD(l.fd, wait); errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			continue
		} else if err != nil {
			break
		}
		nfd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			break
		}
		var tag [1]byte
		if waitFD(nfd, deadline) != nil {
			unix.Close(nfd)
			break
		}
		n, rerr := unix.Read(nfd, tag[:])
		i := -1
		switch {
		case n == 1 && rerr == nil && tag[0] == agentproto.OutTagStdout:
			i = 0
		case n == 1 && rerr == nil && tag[0] == agentproto.OutTagStderr:
			i = 1
		}
		if i < 0 || got[i] != nil {
			unix.Close(nfd)
			continue
		}
		got[i] = os.NewFile(uintptr(nfd), "exec-output")
	}
	if got[0] == nil || got[1] == nil {
		for _, f := range got {
			if f != nil {
				f.Close()
			}
		}
		return nil, nil, errors.New("output socket: the host did not connect")
	}
	return got[0], got[1], nil
}

// waitFD waits until fd is readable or deadline passes.
func waitFD(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}
