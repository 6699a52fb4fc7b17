package gvisor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/testenv"
)

// waitNoBoxes waits (up to 20 s) until the driver at dir has no box left on
// the host: a one-shot's teardown finishes after Run returns.
func waitNoBoxes(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		ents, _ := os.ReadDir(filepath.Join(dir, "boxes"))
		if len(ents) == 0 && len(mountsUnder(t, dir)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d boxes still on the host 20 s after Run returned", len(ents))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManagerRun_OneShot: Manager.Run on gVisor takes the one-shot path
// (the command is the sandbox's first process) with the API's results and
// records: output, exit code, env, workdir, events in the generic path's
// order, nothing listed afterwards, nothing on the host once the
// background teardown is done; a missing program, a timeout, the output
// limit, a volume, the network and cancellation.
func TestManagerRun_OneShot(t *testing.T) {
	testenv.NeedRoot(t) // the one-shot path is root only (rootless Run is create + exec)
	d, dir := newDriver(t)
	m := newManager(t, d)
	img := "dir:" + busyboxRootfs(t)
	ctx := context.Background()
	noBoxes := func(t *testing.T) {
		t.Helper()
		if boxes, err := m.List(ctx, boxapi.BoxFilter{}); err != nil || len(boxes) != 0 {
			t.Fatalf("after Run: %d boxes listed (%v)", len(boxes), err)
		}
		waitNoBoxes(t, dir)
	}

	t.Run("Basic", func(t *testing.T) {
		sub, err := m.Subscribe(ctx, boxapi.EventFilter{Types: []boxapi.EventType{boxapi.EventBoxCreated, boxapi.EventBoxStarted,
			boxapi.EventExecStarted, boxapi.EventExecExited, boxapi.EventBoxRemoved}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		res, err := m.Run(ctx, boxapi.RunRequest{Image: img, CPU: 1, Cmd: []string{"sh", "-c", "echo hi $X; pwd; echo e >&2; exit 3"},
			Env: map[string]string{"X": "y"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == nil || *res.ExitCode != 3 || res.Stdout != "hi y\n/root\n" || res.Stderr != "e\n" || res.ErrorMessage != nil {
			t.Fatalf("run = %+v", res)
		}
		var got []string
		var box string
		for len(got) < 5 {
			select {
			case ev := <-sub.C():
				got = append(got, string(ev.Type))
				if box == "" {
					box = ev.BoxID
				}
				if ev.BoxID != box {
					t.Errorf("event of another box: %+v", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("events: %v", got)
			}
		}
		if want := "box.created box.started exec.started exec.exited box.removed"; strings.Join(got, " ") != want {
			t.Errorf("events %v, want %s", got, want)
		}
		noBoxes(t)
	})
	t.Run("MissingProgram", func(t *testing.T) {
		_, err := m.Run(ctx, boxapi.RunRequest{Image: img, Cmd: []string{"/no/such"}})
		if boxrun.ErrorCode(err) != boxapi.CodeRuntimeError {
			t.Fatalf("missing program: %v, want RUNTIME_ERROR", err)
		}
		noBoxes(t)
	})
	t.Run("Timeout", func(t *testing.T) {
		start := time.Now()
		// The timeout counts from the command's start, not the sandbox's
		// (which takes longer than this on a loaded host): the echo runs.
		res, err := m.Run(ctx, boxapi.RunRequest{Image: img, Cmd: []string{"sh", "-c", "echo before; sleep 30"}, TimeoutMS: 300})
		if err != nil {
			t.Fatal(err)
		}
		if res.ErrorMessage == nil || !strings.Contains(*res.ErrorMessage, "timed out") || res.Stdout != "before\n" || time.Since(start) > 25*time.Second {
			t.Fatalf("run with timeout = %+v after %v", res, time.Since(start))
		}
		noBoxes(t)
	})
	t.Run("OutputLimit", func(t *testing.T) {
		res, err := m.Run(ctx, boxapi.RunRequest{Image: img, Cmd: []string{"sh", "-c", "yes 0123456789 | head -c 1000000; exit 4"}, OutputLimit: 4096})
		if err != nil {
			t.Fatal(err)
		}
		if *res.ExitCode != 4 || len(res.Stdout) != 4096 || !strings.Contains(res.Stderr, "truncated") {
			t.Fatalf("limited run: code %d, %d bytes of stdout, stderr %q", *res.ExitCode, len(res.Stdout), res.Stderr)
		}
		noBoxes(t)
	})
	t.Run("Volume", func(t *testing.T) {
		host := t.TempDir()
		if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host"), 0o644); err != nil {
			t.Fatal(err)
		}
		// A read-write volume must not be host root's (see Limits.IDBase).
		if err := os.Chown(host, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		res, err := m.Run(ctx, boxapi.RunRequest{Image: img, Cmd: []string{"sh", "-c", "cat /v/in; echo out > /v/out"},
			Volumes: []boxapi.Volume{{HostPath: host, GuestPath: "/v"}}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "from host" || *res.ExitCode != 0 {
			t.Fatalf("run with a volume = %+v", res)
		}
		if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "out\n" {
			t.Fatalf("file written to the volume: %q %v", b, err)
		}
		noBoxes(t)
	})
	t.Run("Network", func(t *testing.T) {
		res, err := m.Run(ctx, boxapi.RunRequest{Image: img, Network: true, Cmd: []string{"sh", "-c", "cat /etc/resolv.conf; cat /proc/net/dev"}})
		if err != nil {
			t.Fatal(err)
		}
		if *res.ExitCode != 0 || !strings.Contains(res.Stdout, "nameserver ") || !strings.Contains(res.Stdout, "eth") {
			t.Fatalf("networked run = %+v", res)
		}
		noBoxes(t)
	})
	t.Run("Canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(1500*time.Millisecond, cancel)
		start := time.Now()
		_, err := m.Run(cctx, boxapi.RunRequest{Image: img, Cmd: []string{"sleep", "30"}})
		if !errors.Is(err, context.Canceled) || boxrun.ErrorCode(err) != boxapi.CodeCanceled || time.Since(start) > 15*time.Second {
			t.Fatalf("canceled run: %v after %v", err, time.Since(start))
		}
		noBoxes(t)
	})
}

// runCrashEnv tells a re-executed test binary to act as a server that is
// SIGKILLed during a one-shot Run (TestManagerRunCrashChild).
const runCrashEnv = "BOXRUN_GVISOR_RUN_CRASH_DIR"

// TestManagerRunCrashChild is not a test: it is the server that
// TestManagerRun_Crash starts and SIGKILLs during a Run.
func TestManagerRunCrashChild(t *testing.T) {
	dir := os.Getenv(runCrashEnv)
	if dir == "" {
		t.Skip("helper process for TestManagerRun_Crash")
	}
	m, err := openManagerAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go func() {
		_, err := m.Run(ctx, boxapi.RunRequest{Image: "dir:" + os.Getenv(runCrashEnv+"_ROOTFS"), Cmd: []string{"sh", "-c", "echo started; sleep 300"}})
		fmt.Println("RUN ENDED", err)
	}()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		boxes, _ := m.List(ctx, boxapi.BoxFilter{})
		if len(boxes) != 1 || boxes[0].Status != boxapi.StatusRunning {
			continue
		}
		execs, _ := m.ListExecs(ctx, boxes[0].ID)
		if len(execs) != 1 {
			continue
		}
		var started bool
		_ = m.ExecEvents(ctx, execs[0].ID, -1, func(ev boxapi.ExecEvent) error {
			if strings.Contains(ev.Data, "started") {
				started = true
				return errors.New("seen")
			}
			return nil
		})
		if started {
			fmt.Println("READY", boxes[0].ID, boxes[0].Handle)
			select {}
		}
	}
	t.Fatal("the run did not start")
}

// TestManagerRun_Crash SIGKILLs a server during a one-shot Run. After a
// restart on the same state, the run's box and exec are gone and nothing of
// its sandbox is left on the host (processes, mounts, files, cgroups).
func TestManagerRun_Crash(t *testing.T) {
	testenv.NeedRoot(t) // only the one-shot path (root) journals its boxes for Open
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, err.Error())
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestManagerRunCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), runCrashEnv+"="+dir, runCrashEnv+"_ROOTFS="+busyboxRootfs(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var f []string
	for sc.Scan() {
		if f = strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
			break
		}
		f = nil
	}
	cmd.Process.Kill()
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Wait()
	if f == nil {
		t.Fatal("the server did not get ready")
	}
	box, handle := f[1], f[2]
	if ps := processesMentioning(t, handle); len(ps) == 0 {
		t.Fatal("the run's sandbox is not running after the crash: the test proves nothing")
	}
	m, err := openManagerAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Get(ctx, box); boxrun.ErrorCode(err) != boxapi.CodeBoxNotFound {
		t.Errorf("the interrupted run's box after the restart: %v, want BOX_NOT_FOUND", err)
	}
	if boxes, _ := m.List(ctx, boxapi.BoxFilter{}); len(boxes) != 0 {
		t.Errorf("%d boxes after the restart", len(boxes))
	}
	gdir := filepath.Join(dir, "gvisor")
	assertNothingLeftOf(t, gdir, handle)
	if ents, _ := os.ReadDir(filepath.Join(dir, "output")); len(ents) != 0 {
		t.Errorf("%d output logs left", len(ents))
	}
	// And the restarted server runs.
	res, err := m.Run(ctx, boxapi.RunRequest{Image: "dir:" + busyboxRootfs(t), Cmd: []string{"echo", "again"}})
	if err != nil || res.Stdout != "again\n" {
		t.Fatalf("run after the restart: %+v %v", res, err)
	}
	waitNoBoxes(t, gdir)
	assertNothingLeft(t, gdir)
}
