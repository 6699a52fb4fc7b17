// Package ptyutil opens pseudo-terminals whose master can be read with
// deadlines, feeds a terminal its input with EOF as the terminal's EOF
// character, and takes what an exited process left in its output pipe or
// terminal (ReadAvailable). It is shared by the gvisor driver, the qemu guest agent and
// the fake driver of boxruntest; it imports nothing of boxrun.
package ptyutil

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// DefaultRows and DefaultCols are the size of a terminal opened with a zero
// size.
const (
	DefaultRows = 24
	DefaultCols = 80
)

// EOFChar is the terminal's default EOF character (^D, VEOF).
const EOFChar = 4

// Open opens a pseudo-terminal of rows x cols (DefaultRows x DefaultCols
// when either is 0). The master is a non-blocking, pollable dup of the one
// creack/pty opens (which is blocking), so read deadlines work on it: a
// reader must not hang on a terminal that a background child keeps open.
// The caller owns and closes both files.
func Open(rows, cols uint16) (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer m.Close()
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		tty.Close()
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		tty.Close()
		return nil, nil, fmt.Errorf("pty master: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := SetSize(master, rows, cols); err != nil {
		master.Close()
		tty.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// SetSize sets the window size of a pty master opened by Open (rows x cols,
// DefaultRows x DefaultCols when either is 0). It does not call Fd, which
// would put the file back into blocking mode.
func SetSize(master *os.File, rows, cols uint16) error {
	if rows == 0 || cols == 0 {
		rows, cols = DefaultRows, DefaultCols
	}
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		return err
	}
	if ierr != nil {
		return fmt.Errorf("set terminal size: %w", ierr)
	}
	return nil
}

// EOFWriter writes to a terminal's master and remembers whether the input
// ends in the middle of a line, so Close can deliver EOF.
type EOFWriter struct {
	W       io.Writer
	midLine bool
}

// Write writes p to W.
func (e *EOFWriter) Write(p []byte) (int, error) {
	n, err := e.W.Write(p)
	if n > 0 {
		e.midLine = p[n-1] != '\n'
	}
	return n, err
}

// Close delivers EOF the way a user types it: the EOF character, twice when
// the input ends in the middle of a line (the first only ends that line for
// a canonical-mode reader). It does not close W, since a terminal cannot be
// half-closed. A raw-mode reader sees the characters as data.
func (e *EOFWriter) Close() error {
	eof := []byte{EOFChar, EOFChar}
	if !e.midLine {
		eof = eof[:1]
	}
	_, err := e.W.Write(eof)
	return err
}

// CopyInput copies src to a terminal's master w, then delivers EOF (see
// EOFWriter.Close) if src ended with io.EOF. It returns the first error
// (a write error when the process is gone and w closed).
func CopyInput(w io.Writer, src io.Reader) error {
	ew := &EOFWriter{W: w}
	if src != nil {
		if _, err := io.Copy(ew, src); err != nil {
			return err
		}
	}
	return ew.Close()
}

// ReadAvailable reads from f (a pipe or a pty master opened for polling)
// without waiting, until it is empty, at EOF or write returns false, and
// passes each read to write. It clears f's read deadline first: it is
// meant for a reader whose deadline passed after the process writing f
// exited, to take what that process left in f. What it left fits in the
// pipe, so it reads at most the pipe's capacity (1 MiB for a file that is
// not a pipe): a background child that keeps writing cannot hold it.
func ReadAvailable(f *os.File, buf []byte, write func([]byte) bool) {
	if f.SetReadDeadline(time.Time{}) != nil {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	limit := 1 << 20
	_ = rc.Control(func(fd uintptr) {
		if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && n > 0 {
			limit = n
		}
	})
	for total := 0; total < limit; {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf[:min(len(buf), limit-total)])
			return true // never wait for more
		}); err != nil || rerr != nil || n <= 0 {
			return
		}
		total += n
		if !write(buf[:n]) {
			return
		}
	}
}
