package boxrun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrStateLocked is returned (wrapped in a *StateLockedError) by Open when
// another Manager, in this process or any other, holds the state directory.
var ErrStateLocked = errors.New("state directory in use")

// StateLockedError says which process holds a state directory. It matches
// ErrStateLocked with errors.Is.
type StateLockedError struct {
	Dir string // the state directory
	PID int    // the holder's process ID; 0 when it could not be read
}

// Error names the directory and the holder.
func (e *StateLockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("state directory %s is in use by another BoxRun server (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("state directory %s is in use by another BoxRun server", e.Dir)
}

// Is makes errors.Is(err, ErrStateLocked) true.
func (e *StateLockedError) Is(target error) bool { return target == ErrStateLocked }

// dirLock is an exclusive flock(2) on dir/boxrun.lock, held from Open to
// Close. The kernel drops it when the process dies, so a crash never leaves a
// stale lock behind. The file holds the holder's PID for the error message.
type dirLock struct{ f *os.File }

// lockDir takes the lock on dir or fails at once with *StateLockedError.
// flock locks belong to the open file description, so a second Open in the
// same process conflicts as well.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "boxrun.lock"), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			return nil, &StateLockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// unlock releases the lock; the file stays (removing it would race with a
// new holder that opened it meanwhile).
func (l *dirLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}

// CheckStateDir reports whether dir could be opened now: a
// *StateLockedError when another Manager holds it, nil when it is free or
// does not exist yet. It creates nothing and holds nothing, so callers (the
// CLI's serve) can refuse plainly before building drivers; Open checks again.
func CheckStateDir(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "boxrun.lock"), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check state directory: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
			abs, _ := filepath.Abs(dir)
			return &StateLockedError{Dir: abs, PID: pid}
		}
		return fmt.Errorf("check state directory: %w", err)
	}
	return nil
}
