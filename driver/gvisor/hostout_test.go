package gvisor_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// listenCount listens on path and counts the connections it accepts.
func listenCount(t *testing.T, path string) *atomic.Int32 {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

// TestHostile_ExecSocketOtherBox: an exec's output socket (see
// agentproto.Request.HostOut) lives in its box's private agent directory
// and exists only until the host connected. Another box reaches it by no
// path: not through its own agent directory, not by the host path of the
// first box's one, and not even when handed a host socket in a volume
// (runsc --host-uds=create never lets a box connect to a host socket).
// Meanwhile the dial tool does connect to the box's own agent, and execs
// of the first box do get host-connected output.
func TestHostile_ExecSocketOtherBox(t *testing.T) {
	testenv.NeedRoot(t) // builds its probe with the go command of the parent run
	d, _ := newDriver(t)
	tool := buildUnixdial(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	a := create(t, d, sandbox.Spec{BoxID: "hostout-a", Image: img})
	b := create(t, d, sandbox.Spec{BoxID: "hostout-b", Image: img, Volumes: []boxapi.Volume{{HostPath: tool, GuestPath: "/vol", Readonly: true}}})

	// A's exec gets host-connected output, and its socket is gone once
	// the process runs.
	var out boxruntest.SyncBuffer
	p, err := d.Exec(t.Context(), a, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo started; sleep 2"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if ho, ok := p.(interface{ HostOut() bool }); !ok || !ho.HostOut() {
		t.Fatal("exec in box A did not get host-connected output")
	}
	agentDirA := filepath.Join(d.BoxDir(a), "agent")
	// (The preparation of the next exec's pair may listen for a moment.)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var left []string
		ents, _ := os.ReadDir(agentDirA)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".out") {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("output sockets %v stay in box A's agent directory while the exec runs", left)
			break
		}
	}
	// What an output socket of A looks like on the host while it
	// listens, held open for the test; and a host socket handed to B.
	name, _ := agentproto.OutSocketName("0123456789abcdef")
	inA := listenCount(t, filepath.Join(agentDirA, name))
	inVol := listenCount(t, filepath.Join(tool, name))

	got, errOut, code := run(t, d, b, nil, "/vol/unixdial",
		"/.boxrun/agent/agent.sock", // B's own agent: the tool works
		"/.boxrun/agent/"+name,
		filepath.Join(agentDirA, name),
		"/vol/"+name)
	if code != 0 {
		t.Fatalf("unixdial in box B: exit %d: %s%s", code, got, errOut)
	}
	t.Logf("unixdial in box B:\n%s", got)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[0], ": connected") {
		t.Fatalf("unixdial in box B printed %q; want 4 lines, the first connected to its own agent", got)
	}
	for _, l := range lines[1:] {
		if strings.HasSuffix(l, ": connected") {
			t.Errorf("box B connected to another box's or the host's socket: %s", l)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := inA.Load() + inVol.Load(); n != 0 {
		t.Errorf("host sockets accepted %d connections from box B", n)
	}
	if code, err := p.Wait(); code != 0 || err != nil || out.String() != "started\n" {
		t.Errorf("exec in A: code %d, err %v, out %q", code, err, out.String())
	}
}

// TestHostile_OutputSocketLink: box root can write its agent directory, so
// it may put a link named like an output socket there, pointing at some
// other socket of the host. The host dials only a socket that is itself in
// that directory, never through a link.
func TestHostile_OutputSocketLink(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	target := filepath.Join(other, "host.sock")
	hits := listenCount(t, target)
	if err := os.Symlink(target, filepath.Join(dir, "xaa.out")); err != nil {
		t.Fatal(err)
	}
	if c, err := gvisor.DialSocketNoFollow(t.Context(), dir, "xaa.out"); err == nil {
		c.Close()
		t.Fatal("dialed through a link")
	}
	real := listenCount(t, filepath.Join(dir, "xbb.out"))
	c, err := gvisor.DialSocketNoFollow(t.Context(), dir, "xbb.out")
	if err != nil {
		t.Fatalf("dial a real socket: %v", err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	if hits.Load() != 0 || real.Load() != 1 {
		t.Errorf("accepted: through the link %d (want 0), real socket %d (want 1)", hits.Load(), real.Load())
	}
}

// TestCheckpointBackgroundChildHoldsOutput: a background child still holds
// the host-connected stdout of the exec that started it (a server started
// with "cmd &"); the box checkpoints and restores all the same.
func TestCheckpointBackgroundChildHoldsOutput(t *testing.T) {
	d, dir := newDriver(t)
	if rootlessRefusesCheckpoint(t, d) {
		return
	}
	ctx := context.Background()
	h := create(t, d, sandbox.Spec{BoxID: "ckpt-held", Image: &sandbox.Image{Rootfs: busyboxRootfs(t)}})
	if _, _, code := run(t, d, h, nil, "sh", "-c", `setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' & echo hi`); code != 0 {
		t.Fatal("start loop")
	}
	before := waitCount(t, d, h, 10)
	snap := filepath.Join(dir, "live")
	if err := d.Checkpoint(ctx, h, snap, sandbox.CheckpointOptions{}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	h2, err := d.Restore(ctx, snap, sandbox.Spec{BoxID: "ckpt-held-2"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	waitCount(t, d, h2, before+5)
	d.Remove(ctx, h2)
}

// buildUnixdial builds testdata/unixdial into a fresh directory (to mount
// into a box as a volume) and returns the directory.
func buildUnixdial(t *testing.T) string {
	t.Helper()
	tool := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(tool, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(tool, "unixdial"), "./testdata/unixdial")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build unixdial: %v\n%s", err, out)
	}
	return tool
}

// TestHostile_OutputSocketThief: box root connects to every output socket
// that appears in its agent directory (each exec's, and the pairs the
// driver prepares ahead of execs), tagged as the host would. That can only
// cost the box its own execs' output: every exec still ends with its exit
// code within the drain bounds, and once the thief is gone execs get their
// exact output over host-connected sockets again.
func TestHostile_OutputSocketThief(t *testing.T) {
	testenv.NeedRoot(t) // builds its probe with the go command of the parent run
	d, _ := newDriver(t)
	tool := buildUnixdial(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	a := create(t, d, sandbox.Spec{BoxID: "thief", Image: img, Volumes: []boxapi.Volume{{HostPath: tool, GuestPath: "/vol", Readonly: true}}})

	const thiefSecs = 4
	var loot boxruntest.SyncBuffer
	thief, err := d.Exec(t.Context(), a, sandbox.ProcessSpec{Cmd: []string{"/vol/unixdial", "-steal", "/.boxrun/agent", fmt.Sprint(thiefSecs)}, Stdout: &loot})
	if err != nil {
		t.Fatal(err)
	}
	execs := 0
	for end := time.Now().Add(thiefSecs * time.Second * 3 / 4); time.Now().Before(end); execs++ {
		start := time.Now()
		p, err := d.Exec(t.Context(), a, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo x; exit 3"}, Stdout: io.Discard})
		if err != nil {
			t.Fatalf("exec %d under the thief: %v", execs, err)
		}
		if code, err := p.Wait(); code != 3 || err != nil {
			t.Fatalf("exec %d under the thief: code %d, err %v; want 3", execs, code, err)
		}
		if el := time.Since(start); el > agentproto.DrainMax+5*time.Second {
			t.Errorf("exec %d under the thief took %v", execs, el)
		}
	}
	if code, err := thief.Wait(); code != 0 || err != nil {
		t.Fatalf("thief: %d %v", code, err)
	}
	t.Logf("%d execs beside the thief; it says: %s", execs, strings.TrimSpace(loot.String()))
	if !strings.HasPrefix(loot.String(), "stole ") {
		t.Fatalf("thief printed %q", loot.String())
	}
	for i := range 5 {
		var out boxruntest.SyncBuffer
		p, err := d.Exec(t.Context(), a, sandbox.ProcessSpec{Cmd: []string{"echo", "after", fmt.Sprint(i)}, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil || out.String() != fmt.Sprintf("after %d\n", i) {
			t.Fatalf("exec after the thief: code %d err %v out %q", code, err, out.String())
		}
		if ho, ok := p.(interface{ HostOut() bool }); !ok || !ho.HostOut() {
			t.Errorf("exec %d after the thief has no host-connected output", i)
		}
	}
}
