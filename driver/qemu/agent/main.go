//go:build linux

// Command agent is the guest agent of the qemu driver: a static binary that
// runs as /init (PID 1) inside each micro-VM. It loads the virtio modules
// listed in /modules/order, mounts the box's root filesystem when the host
// asks (proto.OpSetup), reaps every zombie, and serves the host over the
// virtio-serial port named "boxrun.agent" with the multiplexed protocol of
// package proto: concurrent execs with streamed output, stdin, signals and
// TTYs, tar copies in and out, and shutdown.
//
// Build it with CGO_ENABLED=0 (qemu.BuildAgent does); the driver puts it in
// the initramfs it assembles. It refuses to run unless it is PID 1.
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// portName is the virtserialport name the driver gives the agent channel.
const portName = "boxrun.agent"

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("boxrun-agent: ")
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "boxrun-agent: must run as PID 1 inside a boxrun qemu guest")
		os.Exit(2)
	}
	a := newAgent()
	if err := a.boot(); err != nil {
		log.Printf("boot failed: %v", err)
		powerOff()
	}
	a.serve()
}

// boot prepares the initramfs environment and loads the kernel modules.
func (a *agent) boot() error {
	os.Setenv("PATH", defaultPath)
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	go a.reap()
	order, err := os.ReadFile("/modules/order")
	if err != nil {
		return fmt.Errorf("read module list: %w", err)
	}
	for _, name := range strings.Fields(string(order)) {
		if err := loadModule(filepath.Join("/modules", name)); err != nil {
			return err
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && err != unix.EEXIST {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// findPort waits for the virtio-serial port named portName and returns its
// device path.
func findPort() (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			name, err := os.ReadFile(filepath.Join(d, "name"))
			if err != nil || strings.TrimSpace(string(name)) != portName {
				continue
			}
			dev := "/dev/" + filepath.Base(d)
			if _, err := os.Stat(dev); err == nil {
				return dev, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", fmt.Errorf("virtio port %q not found", portName)
}

func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
