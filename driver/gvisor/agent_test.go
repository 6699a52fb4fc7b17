package gvisor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// runscExecs lists host `runsc ... exec` processes of box h.
func runscExecs(t *testing.T, h string) []string {
	var out []string
	for _, p := range processesMentioning(t, h) {
		if strings.Contains(p, " exec ") {
			out = append(out, p)
		}
	}
	return out
}

// TestAgent_Exec checks that execs go through the agent: 100 concurrent
// execs on one box, each output exact and in order, with no `runsc exec`
// process on the host while they run.
func TestAgent_Exec(t *testing.T) {
	d, _ := newDriver(t)
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "agent", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	if got := d.DescribeBox(ctx, h)["agent"]; got != gvisor.AgentConnected {
		t.Fatalf("agent state %q, want %q (%v)", got, gvisor.AgentConnected, d.DescribeBox(ctx, h))
	}
	const n, lines = 100, 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errb bytes.Buffer
			p, err := d.Exec(ctx, h, sandbox.ProcessSpec{
				Cmd:    []string{"sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo %d-$i; i=$((i+1)); done; echo E%d >&2; sleep 0.5", lines, i, i)},
				Stdout: &out, Stderr: &errb,
			})
			if err != nil {
				errs <- err
				return
			}
			code, err := p.Wait()
			var want strings.Builder
			for j := range lines {
				fmt.Fprintf(&want, "%d-%d\n", i, j)
			}
			if err != nil || code != 0 || out.String() != want.String() || errb.String() != fmt.Sprintf("E%d\n", i) {
				errs <- fmt.Errorf("exec %d: code %d err %v, stdout %d bytes (exact: %v), stderr %q", i, code, err, out.Len(), out.String() == want.String(), errb.String())
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if ps := runscExecs(t, h); len(ps) > 0 {
		t.Errorf("runsc exec processes during agent execs: %v", ps)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		o, _, _ := run(t, d, h, nil, "ps", "-o", "pid,args")
		t.Logf("ps after: %s", o)
	}
}

// TestAgent_KilledOrReplaced attacks the agent from inside the box as
// root: SIGKILL and SIGSTOP to the agent, the socket removed, a plain file
// in its place.
// The next exec still works each time and the box stays running.
func TestAgent_KilledOrReplaced(t *testing.T) {
	d, _ := newDriver(t)
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "agent", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	for _, attack := range []string{
		killAgent("KILL"),
		killAgent("STOP"),
		killAgent("KILL"),
		"rm -f /.boxrun/agent/agent.sock",
		"rm -f /.boxrun/agent/agent.sock; echo x > /.boxrun/agent/agent.sock",
	} {
		var aout boxruntest.SyncBuffer
		if p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", attack}, Stdout: &aout, Stderr: &aout}); err == nil {
			code, err := p.Wait()
			t.Logf("attack %q: %d, %v: %s", attack, code, err, aout.String())
		}
		time.Sleep(500 * time.Millisecond)
		d2, err := gvisor.New(gvisor.Config{Dir: filepath.Dir(filepath.Dir(d.BoxDir(h)))})
		if err != nil {
			t.Fatal(err)
		}
		for _, dd := range []*gvisor.Driver{d, d2} { // the same driver, and a new one
			out, _, code := run(t, dd, h, nil, "echo", "still works")
			if out != "still works\n" || code != 0 {
				t.Fatalf("after %q: exec gave %q, %d", attack, out, code)
			}
			if st, _ := dd.State(ctx, h); st != sandbox.Running {
				t.Fatalf("after %q: state %v", attack, st)
			}
		}
		t.Logf("after %q: agent %v", attack, d2.DescribeBox(ctx, h))
		d2.Close()
	}
	// The agent listens again on a fresh socket within a second.
	deadline := time.Now().Add(3 * time.Second)
	for d.DescribeBox(ctx, h)["agent"] != gvisor.AgentConnected {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not come back: %v", d.DescribeBox(ctx, h))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killAgent is a shell command that sends sig to the agent process.
func killAgent(sig string) string {
	return `(sleep 0.2; for p in /proc/[0-9]*; do c=$(tr '\0' ' ' < $p/cmdline 2>/dev/null); case "$c" in "/.boxrun/init agent"*) kill -` + sig + ` ${p#/proc/};; esac; done) >/dev/null 2>&1 &`
}

// TestAgent_TTYSessionKilled checks that killing a TTY exec (what the
// Manager does when an attached client goes away) kills its whole
// session: an interactive shell's background jobs sit in process groups
// of their own.
func TestAgent_TTYSessionKilled(t *testing.T) {
	d, _ := newDriver(t)
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "agent", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	pr, pw, _ := os.Pipe()
	defer pw.Close()
	var out boxruntest.SyncBuffer
	p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-i"}, TTY: true, Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(pw, "sleep 1001 & sleep 1002 & (setsid sleep 1003 &) ; sleep 1004")
	waitFor(t, func() bool {
		o, _, _ := run(t, d, h, nil, "ps", "-o", "args")
		return strings.Contains(o, "sleep 1004")
	})
	if err := p.Signal(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	time.Sleep(500 * time.Millisecond)
	o, _, _ := run(t, d, h, nil, "ps", "-o", "args")
	for _, s := range []string{"sleep 1001", "sleep 1002", "sleep 1004"} {
		if strings.Contains(o, s) {
			t.Errorf("%s survived the kill of its session:\n%s", s, o)
		}
	}
}

// agentCrashEnv tells a re-executed test binary to act as a server that
// starts execs and is SIGKILLed (TestAgentCrashChild).
const agentCrashEnv = "BOXRUN_GVISOR_AGENT_CRASH_DIR"

// TestAgentCrashChild is not a test: it is the process TestAgent_ServerCrash
// starts and SIGKILLs. It creates a box, starts three `sleep 300` execs
// (one of them on a TTY) and waits to be killed.
func TestAgentCrashChild(t *testing.T) {
	dir := os.Getenv(agentCrashEnv)
	if dir == "" {
		t.Skip("helper process for TestAgent_ServerCrash")
	}
	d, err := gvisor.New(gvisor.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "crash", Image: &sandbox.Image{Rootfs: os.Getenv(agentCrashEnv + "_ROOTFS")}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := d.Exec(context.Background(), h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "sleep 300 & sleep 300"}, TTY: i == 0}); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("READY", h)
	select {}
}

// TestAgent_ServerCrash SIGKILLs the process that owns a box during three
// `sleep 300` execs. A new driver on the same directory reconnects to the
// agent, finds none of the execs' processes left in the box, and runs new
// execs through the agent (no `runsc exec` on the host).
func TestAgent_ServerCrash(t *testing.T) {
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, err.Error())
	}
	rootfs := busyboxRootfs(t)
	dir := filepath.Join(t.TempDir(), "gvisor")
	child := crashtest.Start(t, "TestAgentCrashChild", []string{agentCrashEnv + "=" + dir, agentCrashEnv + "_ROOTFS=" + rootfs}, "-test.v")
	f := child.MustAwait(t, "the child", "READY", 2, 10*time.Minute)
	child.Kill()
	h := f[1]

	d, err := gvisor.New(gvisor.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Remove(context.Background(), h)
		d.Close()
	})
	ctx := context.Background()
	var ps string
	deadline := time.Now().Add(time.Second)
	for {
		ps, _, _ = run(t, d, h, nil, "ps", "-o", "args")
		if !strings.Contains(ps, "sleep 300") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(ps, "sleep 300") {
		t.Fatalf("processes of the dead server's execs still run in the box:\n%s", ps)
	}
	if got := d.DescribeBox(ctx, h)["agent"]; got != gvisor.AgentConnected {
		t.Fatalf("agent state after restart %q", got)
	}
	p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sleep", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if rp := runscExecs(t, h); len(rp) > 0 {
		t.Errorf("runsc exec after restart: %v", rp)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("exec after restart: %d, %v", code, err)
	}
}

// TestNew_DynamicInit checks that a dynamically linked init binary (what a
// cgo build gives) is refused with the command that rebuilds it.
func TestNew_DynamicInit(t *testing.T) {
	dyn := ""
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if gvisor.ELFInterp(p) != "" {
			dyn = p
			break
		}
	}
	if dyn == "" {
		testenv.Skip(t, "no dynamically linked /bin/true here")
	}
	_, err := gvisor.New(gvisor.Config{Dir: filepath.Join(t.TempDir(), "g"), InitPath: dyn})
	if !errors.Is(err, gvisor.ErrUnsupported) || !strings.Contains(err.Error(), "CGO_ENABLED=0 go install github.com/boxrun/boxrun/cmd/boxrun") {
		t.Fatalf("New with a dynamic init: %v", err)
	}
}
