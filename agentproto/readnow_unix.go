//go:build unix

package agentproto

import (
	"net"
	"syscall"
	"time"
)

// readNow reads from c without waiting until it is empty, at EOF, or 4 MiB
// were read (a background child that keeps writing cannot hold the exec
// open), passing each chunk to write.
func readNow(c net.Conn, buf []byte, write func([]byte) bool) {
	sc, ok := c.(syscall.Conn)
	if !ok || c.SetReadDeadline(time.Time{}) != nil {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	const limit = 4 << 20
	for total := 0; total < limit; {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf[:min(len(buf), limit-total)])
			return true // never wait
		}); err != nil || rerr != nil || n <= 0 {
			return
		}
		total += n
		if !write(buf[:n]) {
			return
		}
	}
}

// quiet reports whether c has nothing to read and is not at EOF, without
// waiting: the state of an output connection the peer has not used yet.
// A connection the peer closed or wrote to is not quiet.
func quiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	alive := false
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && rerr == syscall.EAGAIN
		return true // never wait
	}); err != nil {
		return false
	}
	return alive
}
