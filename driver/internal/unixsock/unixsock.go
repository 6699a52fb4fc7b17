// Package unixsock dials the Unix sockets the drivers keep in their
// boxes' state directories, whose paths may be longer than a sockaddr_un
// allows.
package unixsock

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Dial connects to the socket name in dir. Paths longer than a
// sockaddr_un allows are reached through /proc/self/fd/<dirfd>/name.
func Dial(ctx context.Context, dir, name string) (net.Conn, error) {
	var dl net.Dialer
	p := filepath.Join(dir, name)
	if len(p) < 100 {
		return dl.DialContext(ctx, "unix", p)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return dl.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd)+"/"+name)
}

// DialNoFollow connects to the socket name in dir, a directory a box can
// write: name must be a socket itself, not a link the box planted to some
// other socket of the host. It is reached through /proc/self/fd/<fd> of an
// O_PATH descriptor opened without following links, so the path length
// does not matter either.
func DialNoFollow(ctx context.Context, dir, name string) (net.Conn, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unixsock: open %s: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("unixsock: stat %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("unixsock: %s (mode %o): %w", name, st.Mode, unix.ENOTSOCK)
	}
	var dl net.Dialer
	return dl.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
}
