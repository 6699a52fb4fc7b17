//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/boxrun/boxrun/agentproto"
	"golang.org/x/sys/unix"
)

const newRoot = "/mnt/root"

// doSetup mounts the box: the ext4 root device, the kernel filesystems and
// the virtiofs volumes inside it, then moves it over / and chroots the
// agent into it, so every later path is a path inside the box. A second
// setup (the host reconnected, or the VM was restored from a checkpoint)
// only sets the clock, the entropy, the hostname and a changed network.
func (a *agent) doSetup(s *agentproto.Setup) error {
	if s == nil {
		return errors.New("setup: missing parameters")
	}
	if s.TimeUnixNano > 0 {
		tv := unix.NsecToTimeval(s.TimeUnixNano)
		unix.Settimeofday(&tv)
	}
	if len(s.Entropy) > 0 {
		addEntropy(s.Entropy)
	}
	if s.Hostname != "" {
		// Again at every setup: a box restored from a checkpoint has
		// its source's, and a new one.
		unix.Sethostname([]byte(s.Hostname))
	}
	a.mu.Lock()
	prev := a.setup
	a.mu.Unlock()
	if prev != nil {
		if s.Net != nil && (prev.Net == nil || *s.Net != *prev.Net) {
			// Restored from a checkpoint into a network of its own:
			// the NIC moves to its new address and gateway.
			if err := netUp(s.Net); err != nil {
				return err
			}
			next := *prev
			next.Net = s.Net
			a.mu.Lock()
			a.setup = &next
			a.mu.Unlock()
		}
		return nil
	}
	if err := loopbackUp(); err != nil {
		log.Printf("loopback: %v", err)
	}
	if err := waitFile(s.RootDevice, 10*time.Second); err != nil {
		return err
	}
	// A VM restored from a template snapshot has cached blocks of the
	// template's empty disk: drop them before mounting.
	if f, err := os.Open(s.RootDevice); err == nil {
		unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		f.Close()
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(s.RootDevice, newRoot, "ext4", unix.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount root %s: %w", s.RootDevice, err)
	}
	mounts := []struct {
		fs, dir, data string
		flags         uintptr
	}{
		{"proc", "proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "dev", "", unix.MS_NOSUID},
		{"devpts", "dev/pts", "newinstance,ptmxmode=0666,mode=0620,gid=5", unix.MS_NOSUID | unix.MS_NOEXEC},
		{"tmpfs", "dev/shm", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
	}
	for _, m := range mounts {
		dir := filepath.Join(newRoot, m.dir)
		if err := mkdirIn(dir); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, dir, m.fs, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	// /dev/ptmx must open the new devpts instance.
	ptmx := filepath.Join(newRoot, "dev/ptmx")
	os.Remove(ptmx)
	os.Symlink("pts/ptmx", ptmx)
	if err := mkdirIn(filepath.Join(newRoot, "tmp")); err == nil {
		os.Chmod(filepath.Join(newRoot, "tmp"), 0o1777)
	}
	for _, v := range s.Volumes {
		dir := filepath.Join(newRoot, filepath.Clean("/"+v.Path))
		if err := mkdirIn(dir); err != nil {
			return err
		}
		var flags uintptr
		if v.Readonly {
			flags = unix.MS_RDONLY
		}
		if err := unix.Mount(v.Tag, dir, "virtiofs", flags, ""); err != nil {
			return fmt.Errorf("mount volume %s: %w", v.Path, err)
		}
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if s.Workdir != "" {
		if err := os.MkdirAll(s.Workdir, 0o755); err != nil {
			return fmt.Errorf("workdir: %w", err)
		}
	}
	if s.Net != nil {
		if err := netUp(s.Net); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.setup = s
	a.mu.Unlock()
	return nil
}

// mkdirIn creates dir unless it exists (as a directory or a symlink to one).
func mkdirIn(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	return os.MkdirAll(dir, 0o755)
}

func waitFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(path)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addEntropy mixes b into the kernel's pool, credits it, and reseeds the
// CRNG: clones of one snapshot must not share random numbers.
func addEntropy(b []byte) {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b))
	binary.NativeEndian.PutUint32(info[0:4], uint32(8*len(b)))
	binary.NativeEndian.PutUint32(info[4:8], uint32(len(b)))
	copy(info[8:], b)
	unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
	unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDRESEEDCRNG, 0)
}

// loopbackUp brings lo up; the kernel then gives it 127.0.0.1 and ::1.
// Networked boxes get their other interface from netUp.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
