package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxrun/boxrun/agentproto"
)

// Files in a box directory.
const (
	stateFile   = "box.json"
	diskFile    = "disk.img"
	consoleFile = "console.log"
	qemuLog     = "qemu.log"
	pidFile     = "qemu.pid"
	agentSock   = "agent.sock"
	qmpSock     = "qmp.sock"
)

// qemuArgs returns the QEMU command line of a box. QEMU runs with the box
// directory as its working directory, so every path is relative and
// socket paths stay short.
func (d *Driver) qemuArgs(b *box) []string {
	st := &b.state
	machine := "microvm"
	var extra []string
	if len(st.Volumes) > 0 {
		machine += ",memory-backend=mem"
		extra = append(extra, "-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", st.MemoryMB))
		for i := range st.Volumes {
			extra = append(extra,
				"-chardev", fmt.Sprintf("socket,id=vfs%d,path=%s", i, vfsSock(i)),
				"-device", fmt.Sprintf("vhost-user-fs-device,chardev=vfs%d,tag=%s", i, vfsTag(i)))
		}
	}
	appendLine := []string{"console=ttyS0", "panic=-1", "reboot=t", "quiet", "rdinit=/init"}
	if d.tscKHz > 0 {
		appendLine = append(appendLine, fmt.Sprintf("tsc_early_khz=%d", d.tscKHz))
	}
	args := []string{
		"-name", procTag(b.handle),
		"-M", machine,
		"-accel", d.accel,
	}
	if d.accel == AccelKVM {
		args = append(args, "-cpu", "host,-arch-capabilities")
	}
	args = append(args,
		"-m", strconv.FormatInt(st.MemoryMB, 10),
		"-smp", strconv.FormatInt(st.CPU, 10),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:"+consoleFile,
		"-kernel", d.kernel,
		"-initrd", d.initrd,
		"-append", strings.Join(appendLine, " "),
		"-global", "virtio-mmio.force-legacy=false",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,path="+agentSock+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=boxrun.agent",
		"-drive", "id=root,file="+driveFile(b.dir)+",format=raw,if=none,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-device,drive=root",
		"-qmp", "unix:"+qmpSock+",server=on,wait=off",
		"-pidfile", pidFile,
	)
	args = append(args, netArgs(st)...)
	return append(args, extra...)
}

func vfsSock(i int) string { return fmt.Sprintf("vfs%d.sock", i) }
func vfsTag(i int) string  { return fmt.Sprintf("boxrun-vol%d", i) }

// launch starts QEMU for b (daemonized: it is not our child, exactly as
// after a restart of the host process) and records its PID.
// extra is appended to the command line (e.g. -incoming).
func (d *Driver) launch(ctx context.Context, b *box, extra ...string) error {
	return d.launchMode(ctx, b, true, extra...)
}

// launchMode is launch, optionally not daemonized: QEMU is then a child of
// this process, reaped by a goroutine (template VMs and the KVM probe,
// which must not outlive it). Daemonized or not, a VM migrates (template
// snapshots, checkpoints) as long as its -drive path is absolute: a
// daemonized QEMU runs in /, and with a relative path QEMU 7.2's
// migration fails at bdrv_inactivate_all (see driveFile).
func (d *Driver) launchMode(ctx context.Context, b *box, daemonize bool, extra ...string) error {
	os.Remove(filepath.Join(b.dir, pidFile))
	for _, s := range []string{agentSock, qmpSock} {
		os.Remove(filepath.Join(b.dir, s))
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, qemuLog), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append(d.qemuArgs(b), extra...)
	if daemonize {
		args = append(args, "-daemonize")
	}
	cmd := exec.Command(d.qemu, args...)
	cmd.Dir = b.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d.log.Debug("qemu: launch", "handle", b.handle, "args", cmd.Args)
	if !daemonize {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("qemu: start %s: %w", b.handle, err)
		}
		b.state.PID = cmd.Process.Pid
		go cmd.Wait()
		return nil
	}
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(filepath.Join(b.dir, qemuLog))
		return fmt.Errorf("qemu: start %s: %w: %s", b.handle, err, bytes.TrimSpace(out))
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, pidFile))
	if err != nil {
		return fmt.Errorf("qemu: start %s: pid file: %w", b.handle, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("qemu: start %s: pid file: %w", b.handle, err)
	}
	b.state.PID = pid
	return nil
}

// procTag is the argument that marks the processes of a box: QEMU's -name
// and virtiofsd's argv[0] carry it.
func procTag(handle string) string { return "boxrun-" + handle }

// isBoxProcess reports whether pid is a live (not zombie) QEMU or virtiofsd
// process of the box handle: the check before any signal, so that a
// recycled PID is never killed.
func isBoxProcess(pid int, handle string) bool {
	if pid <= 0 {
		return false
	}
	proc := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	argv0 := filepath.Base(args[0])
	if !strings.HasPrefix(argv0, "qemu-system-") && !strings.Contains(argv0, "virtiofsd") {
		return false
	}
	tag := procTag(handle)
	for _, a := range args {
		if a == tag || strings.HasSuffix(a, "["+tag+"]") {
			return true
		}
	}
	return false
}

// boxProcesses returns the live QEMU and virtiofsd processes of a box,
// found by scanning /proc (so that processes a crash left unrecorded are
// found too).
func boxProcesses(handle string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if isBoxProcess(pid, handle) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killBox SIGKILLs every process of the box and waits until they are gone.
func killBox(ctx context.Context, handle string) error {
	pids := boxProcesses(handle)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return waitGone(ctx, handle, pids, 30*time.Second)
}

// waitGone waits until none of pids is a live process of the box.
func waitGone(ctx context.Context, handle string, pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		alive := 0
		for _, pid := range pids {
			if isBoxProcess(pid, handle) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("qemu: %d processes of box %s did not exit", alive, handle)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// consoleTail returns the end of the box's console log, for error messages.
func consoleTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, consoleFile))
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

var errExited = errors.New("qemu exited")

// driveFile is the -drive file= value of the disk in dir: absolute, since
// QEMU reopens it after an incoming migration and inactivates it at the
// end of an outgoing one, when a daemonized QEMU's working directory is /
// (with a relative path the migration fails: "bdrv_inactivate_all()
// failed"). Commas are doubled, as QEMU options require.
func driveFile(dir string) string {
	return strings.ReplaceAll(filepath.Join(dir, diskFile), ",", ",,")
}

// kvmProbeTimeout bounds the KVM test boot of New: a real KVM guest answers
// in about a second, a software KVM (kvm_pvm) never does.
const kvmProbeTimeout = 15 * time.Second

// probeBoot boots a throwaway VM with accel until its agent answers ping,
// within timeout, and kills it. It switches d.accel for the launch, so it
// runs only before d is shared (in New, and in tests).
func (d *Driver) probeBoot(ctx context.Context, accel string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rnd [4]byte
	rand.Read(rnd[:])
	p := &box{handle: "probe-" + hex.EncodeToString(rnd[:]), dir: filepath.Join(d.dir, "probe")}
	p.state = boxState{CPU: 1, MemoryMB: 128}
	os.RemoveAll(p.dir)
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(p.dir)
	defer killBox(context.Background(), p.handle)
	if err := os.WriteFile(filepath.Join(p.dir, diskFile), make([]byte, 1<<20), 0o600); err != nil {
		return err
	}
	saved := d.accel
	d.accel = accel
	err := d.launchMode(ctx, p, false)
	d.accel = saved
	if err != nil {
		return err
	}
	for {
		conn, err := dialAgent(ctx, p.dir)
		if err == nil {
			_, err = call(ctx, conn, &agentproto.Request{Op: agentproto.OpPing})
			conn.Close()
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no answer in %v: %w", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // QEMU has not made its socket yet
	}
}
