package gvisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// userNS is how a driver that is not root runs runsc: every invocation
// starts in a new user namespace that maps the driver's uid and gid to root,
// and a new mount namespace. The sandbox and gofer processes that
// `runsc run --detach` leaves behind keep that namespace (and the box's
// overlay mounted in it) alive; later calls (exec, kill, delete) talk to the
// sandbox through its control socket in the runsc root and only need to be
// root in some user namespace of the same host user.
type userNS struct {
	uid, gid int
}

// attr returns the process attributes of a runsc call; nil for a nil u
// (the driver is root).
func (u *userNS) attr() *syscall.SysProcAttr {
	if u == nil {
		return nil
	}
	return &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: u.uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: u.gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
}

// probe checks that the process may make user namespaces, by running
// `runsc --version` in one.
func (u *userNS) probe(runsc string) error {
	cmd := exec.Command(runsc, "--version")
	cmd.SysProcAttr = u.attr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("runsc --version in a user namespace: %w: %s", err, out)
	}
	return nil
}

// hostRunArgs are the arguments of the in-box helper's host mode, which
// mounts the overlay of h inside the new namespaces, prepares its root and
// execs runsc with runscArgs.
func (d *Driver) hostRunArgs(h string, m *boxMeta, runscArgs []string) []string {
	bd := d.boxDir(h)
	args := []string{"host-run", m.Lower, filepath.Join(bd, "upper"), filepath.Join(bd, "work"), d.rootfs(h), m.Workdir, d.runscPath}
	return append(args, runscArgs...)
}

// removeAll is os.RemoveAll that, when a directory cannot be read or
// emptied for lack of permission (a box can leave mode 0500 directories in
// its upper layer, which a non-root driver cannot override), makes every
// directory below path owner-writable and tries again.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// WalkDir visits a directory before reading it, so the chmod comes
	// first.
	_ = filepath.WalkDir(path, func(p string, de fs.DirEntry, _ error) error {
		if de != nil && de.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
