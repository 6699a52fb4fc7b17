package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/boxrun/boxrun/internal/mountutil"
	"golang.org/x/sys/unix"
)

// virtiofsd is the vhost-user file server QEMU 7.2 ships (the C one).
const virtiofsdPath = "/usr/lib/qemu/virtiofsd"

// findVirtiofsd returns the virtiofsd binary, or "" when there is none.
func findVirtiofsd() string {
	for _, p := range []string{virtiofsdPath, "/usr/libexec/virtiofsd"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p
	}
	return ""
}

// volMount is where a read-only volume is bind-mounted read-only on the
// host, so that virtiofsd itself cannot write to it (the guest's read-only
// mount alone could be remounted by root in the box).
func volMount(i int) string { return fmt.Sprintf("vol%d", i) }

// startVolumes starts one virtiofsd per volume, each serving a listening
// socket the driver made (--fd, so virtiofsd writes no pid file). Callers
// hold b.mu.
func (d *Driver) startVolumes(ctx context.Context, b *box) (err error) {
	if len(b.state.Volumes) == 0 {
		return nil
	}
	if d.virtiofsd == "" {
		return fmt.Errorf("qemu: volumes need virtiofsd (apt-get install qemu-system-common): %w", ErrUnsupported)
	}
	defer func() {
		if err != nil {
			killBox(context.WithoutCancel(ctx), b.handle)
			d.cleanVolumes(b)
		}
	}()
	for i, v := range b.state.Volumes {
		src := v.HostPath
		if v.Readonly {
			if src, err = roBind(b.dir, i, v.HostPath); err != nil {
				return err
			}
		}
		ln, err := listenUnix(b.dir, vfsSock(i))
		if err != nil {
			return fmt.Errorf("qemu: volume socket: %w", err)
		}
		f, err := ln.File()
		ln.Close()
		if err != nil {
			return err
		}
		cmd := exec.Command(d.virtiofsd, "--fd=3", "-o", "source="+src, "-o", "cache=auto", "-o", "sandbox=namespace")
		cmd.Args[0] = "virtiofsd[" + procTag(b.handle) + "]"
		cmd.Dir = b.dir
		cmd.ExtraFiles = []*os.File{f}
		logf, lerr := os.OpenFile(filepath.Join(b.dir, fmt.Sprintf("virtiofsd%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if lerr == nil {
			cmd.Stdout, cmd.Stderr = logf, logf
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
		f.Close()
		if logf != nil {
			logf.Close()
		}
		if err != nil {
			return fmt.Errorf("qemu: start virtiofsd: %w", err)
		}
		go cmd.Wait() // reap it; it exits with QEMU
	}
	return nil
}

// listenUnix listens on dir/name, through /proc/self/fd when the path is
// too long for a sockaddr_un.
func listenUnix(dir, name string) (*net.UnixListener, error) {
	p := filepath.Join(dir, name)
	os.Remove(p)
	if len(p) >= 100 {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		p = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// roBind bind-mounts src read-only at <dir>/vol<i> and returns that path.
func roBind(dir string, i int, src string) (string, error) {
	dst := filepath.Join(dir, volMount(i))
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return "", fmt.Errorf("qemu: read-only volume %s: bind mount: %w", src, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		unix.Unmount(dst, unix.MNT_DETACH)
		return "", fmt.Errorf("qemu: read-only volume %s: remount: %w", src, err)
	}
	return dst, nil
}

// unmountAll unmounts everything mounted below dir. It fails when a mount
// stays, so that a later RemoveAll never deletes a volume's host files.
func unmountAll(dir string) error {
	if err := mountutil.UnmountUnder(dir); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// cleanVolumes removes the sockets and read-only mounts of the box's
// volumes. Callers hold b.mu, and the box's processes are gone.
func (d *Driver) cleanVolumes(b *box) {
	unmountAll(b.dir)
	for i := range b.state.Volumes {
		os.Remove(filepath.Join(b.dir, vfsSock(i)))
		os.Remove(filepath.Join(b.dir, volMount(i)))
	}
}
