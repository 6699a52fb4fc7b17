package gvisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// crashEnv tells a re-executed test binary to act as the crashing owner of
// a box (TestCrashChild) in the directory it names.
const crashEnv = "BOXRUN_GVISOR_CRASH_DIR"

// TestCrashChild is not a test: it is the process TestDriver_CrashCleanup
// starts and SIGKILLs. It creates a box, starts a long exec, reports on
// stdout and waits to be killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestDriver_CrashCleanup")
	}
	d, err := gvisor.New(gvisor.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := os.Getenv(crashEnv + "_ROOTFS")
	fmt.Println("CREATING")
	h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "crash", Image: &sandbox.Image{Rootfs: rootfs}, MemoryMB: 256, CPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Exec(context.Background(), h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo started; sleep 1000"}, Stdout: os.Stdout})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY", h)
	p.Wait()
}

// TestDriver_CrashCleanup SIGKILLs a process that owns a running sandbox,
// mid-exec and mid-create, then checks that New + Prune leave nothing: no
// mount under Dir, no runsc process, no state, no cgroup.
func TestDriver_CrashCleanup(t *testing.T) {
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, err.Error())
	}
	rootfs := busyboxRootfs(t)
	for _, tc := range []struct {
		name  string
		after string        // kill after this line ...
		delay time.Duration // ... plus this delay
	}{
		{"MidExec", "READY", 0},
		{"MidCreate0", "CREATING", 0},
		{"MidCreate60ms", "CREATING", 60 * time.Millisecond},
		{"MidCreate120ms", "CREATING", 120 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "gvisor")
			child := crashtest.Start(t, "TestCrashChild", []string{crashEnv + "=" + dir, crashEnv + "_ROOTFS=" + rootfs}, "-test.v")
			handle := ""
			if f, err := child.Await(tc.after, 10*time.Minute); err == nil && len(f) == 2 {
				handle = f[1]
			}
			time.Sleep(tc.delay)
			child.Kill()
			if handle != "" {
				if ps := processesMentioning(t, handle); len(ps) == 0 {
					t.Fatal("the sandbox did not survive its owner: nothing to clean up")
				}
			}

			runFiles, _ := filepath.Glob(filepath.Join(dir, "run", "*"))
			t.Logf("before prune: %d mounts, runsc files %v, %d processes",
				len(mountsUnder(t, dir)), runFiles, len(processesMentioning(t, dir)))
			d, err := gvisor.New(gvisor.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.Prune(context.Background(), nil); err != nil {
				t.Fatalf("prune: %v", err)
			}
			time.Sleep(100 * time.Millisecond) // let killed processes go
			assertNothingLeft(t, dir)
			if cg, _ := filepath.Glob("/sys/fs/cgroup/*/boxrun/" + handle); handle != "" && len(cg) > 0 {
				t.Errorf("cgroups left: %v", cg)
			}
		})
	}
}

// newDriverOnly reports whether a driver can be made here.
func newDriverOnly(t *testing.T) (*gvisor.Driver, error) {
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(t.TempDir(), "probe")})
	if err == nil {
		d.Close()
	}
	return d, err
}
