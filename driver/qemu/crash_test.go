package qemu_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/sandbox"
)

// Environment of the crash helper process.
const (
	crashDirEnv   = "BOXRUN_QEMU_CRASH_DIR"
	crashAgentEnv = "BOXRUN_QEMU_CRASH_AGENT"
	crashRootEnv  = "BOXRUN_QEMU_CRASH_ROOTFS"
	// crashDNSEnv makes the helper's box networked (resolving through
	// this DNS server) with box port 8080 published.
	crashDNSEnv = "BOXRUN_QEMU_CRASH_DNS"
)

// TestCrashHelper is not a test: TestDriver_Crash runs the test binary with
// it to own a box and then SIGKILLs it.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestDriver_Crash")
	}
	cfg := qemu.Config{Dir: dir, Agent: os.Getenv(crashAgentEnv)}
	spec := sandbox.Spec{BoxID: "crash", Image: &sandbox.Image{Rootfs: os.Getenv(crashRootEnv)},
		CPU: 1, MemoryMB: 256, DiskSizeGB: 1, Workdir: "/root", Env: []string{"PATH=/bin:/usr/bin"}}
	if dns := os.Getenv(crashDNSEnv); dns != "" {
		cfg.DNS = []string{dns}
		spec.Network, spec.Ports = true, []boxapi.PortMapping{{BoxPort: 8080}}
	}
	d, err := qemu.New(cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	ctx := context.Background()
	h, err := d.Create(ctx, spec)
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	// A running exec whose owner dies must not outlive the connection.
	pr, pw := io.Pipe()
	_, err = d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo running > /tmp/marker; echo started; sleep 1000"}, Stdout: pw})
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
		fmt.Println("ERROR", err)
		return
	}
	go io.Copy(io.Discard, pr)
	fmt.Println("HANDLE", h)
	time.Sleep(time.Hour)
}

// TestDriver_Crash kills the process that owns a running box with SIGKILL,
// reopens the directory, reconnects to the box, and then prunes it: nothing
// may be left (no QEMU process, socket, disk or directory).
func TestDriver_Crash(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	handle := crashOwner(t, dir)
	testCrashAfter(t, dir, handle)
}

// crashOwner runs TestCrashHelper on dir (extra: more of its environment),
// SIGKILLs it once its box runs, and returns the box's handle.
func crashOwner(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	env := append([]string{crashDirEnv + "=" + dir, crashAgentEnv + "=" + agent.get(t), crashRootEnv + "=" + boxruntest.BusyboxImage(t).Rootfs}, extra...)
	child := crashtest.Start(t, "TestCrashHelper", env, "-test.v")
	f, err := child.AwaitAny(10*time.Minute, "HANDLE", "ERROR")
	child.Kill()
	switch {
	case err != nil:
		t.Fatalf("helper printed no handle: %v", err)
	case f[0] == "ERROR" || len(f) != 2:
		t.Fatal(strings.Join(f, " "))
	}
	return f[1]
}

func testCrashAfter(t *testing.T, dir, handle string) {
	d := newDriver(t, agent.get(t), dir)
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if st, err := d.State(ctx, handle); err != nil || st != sandbox.Running {
		t.Fatalf("State after owner crash = %v, %v; want running", st, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c, _ := os.ReadFile(filepath.Join(dir, "boxes", handle, "console.log"))
			t.Logf("console:\n%s", c)
		}
	})
	// Reconnect: the box works, and the exec of the dead owner was killed.
	o, _, code := run(t, d, handle, "", "sh", "-c", "cat /tmp/marker; sleep 0.5; pgrep -f 'sleep 1000' || echo gone")
	if code != 0 || o != "running\ngone\n" {
		t.Errorf("after reopen: code %d, stdout %q; want the marker and the old exec gone", code, o)
	}
	// Prune keeps what it is told to keep.
	if err := d.Prune(ctx, []string{handle}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, handle); st != sandbox.Running {
		t.Fatalf("State after Prune(keep) = %v", st)
	}
	// A second crash: this time nothing is kept.
	d.Close()
	d2 := newDriver(t, agent.get(t), dir)
	defer d2.Close()
	if err := d2.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := d2.State(ctx, handle); st != sandbox.Missing {
		t.Errorf("State after Prune = %v, want missing", st)
	}
	assertNothingLeft(t, dir, handle)
}

// assertNothingLeft checks that no process of the box survives and that
// its directory is gone.
func assertNothingLeft(t *testing.T, dir, handle string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), handle) {
			t.Errorf("process %s of box %s still alive: %q", e.Name(), handle, cmdline)
		}
	}
	left, _ := os.ReadDir(filepath.Join(dir, "boxes"))
	for _, e := range left {
		t.Errorf("left in %s: %s", dir, e.Name())
	}
}
