//go:build linux

package agentexec_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

// hostOutAgent is realAgent (theAgent) with host-connected output: the agent's output
// sockets go to a fresh directory the host side dials.
func hostOutAgent(t *testing.T) (*agentexec.Agent, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ho")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	outDir.Store(&dir)
	t.Cleanup(func() { outDir.Store(nil) })
	a, _ := realAgent(t)
	a.Conn.SetOutDialer(func(ctx context.Context, name string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", filepath.Join(dir, name))
	})
	return a, dir
}

// With host-connected output: exact stdout and stderr (large, concurrent),
// stdin, the exit code; the socket is gone once the process runs.
func TestExec_HostOut(t *testing.T) {
	a, dir := hostOutAgent(t)
	var out, errb bytes.Buffer
	p, err := run(t, a, sandbox.ProcessSpec{
		Cmd:   []string{"sh", "-c", `read l; echo "$l $X"; echo e >&2; exit 3`},
		Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !p.HostOut() {
		t.Fatal("exec did not get host-connected output")
	}
	waitNoSockets(t, dir) // a preparation of the next pair may listen for a moment
	code, err := p.Wait()
	if err != nil || code != 3 || out.String() != "in 1\n" || errb.String() != "e\n" {
		t.Fatalf("code %d err %v out %q err %q", code, err, out.String(), errb.String())
	}

	const outN, errN = 8 << 20, 1 << 20
	var big, bigErr bytes.Buffer
	p, err = run(t, a, sandbox.ProcessSpec{
		Cmd:    []string{"sh", "-c", "yes err | head -c 1048576 >&2 & yes 0123456789abcdef | head -c 8388608; wait"},
		Stdout: &big, Stderr: &bigErr,
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	for _, c := range []struct {
		got  []byte
		line string
		n    int
	}{{big.Bytes(), "0123456789abcdef\n", outN}, {bigErr.Bytes(), "err\n", errN}} {
		want := strings.Repeat(c.line, c.n/len(c.line)+1)[:c.n]
		if sha256.Sum256(c.got) != sha256.Sum256([]byte(want)) {
			t.Errorf("got %d bytes, want %d of %q", len(c.got), c.n, c.line)
		}
	}
}

// A background child that keeps the output sockets open does not hold
// Wait: the output drains until idle, and what the process wrote before
// its exit is all there.
func TestExec_HostOutBackgroundChild(t *testing.T) {
	a, _ := hostOutAgent(t)
	for _, script := range []string{
		"sleep 5 & echo hi", // bounded: nothing kills it after the exit
		"for i in $(seq 60); do echo spam; sleep 0.05; done & echo hi",
	} {
		var out bytes.Buffer
		p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", script}, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		code, err := p.Wait()
		if el := time.Since(start); el > agentproto.DrainMax+time.Second {
			t.Errorf("%q: Wait took %v", script, el)
		}
		if code != 0 || err != nil || !strings.Contains(out.String(), "hi\n") {
			t.Errorf("%q: code %d err %v out %q", script, code, err, out.String())
		}
	}
}

// A TTY exec and a connection without a dialer keep the relayed frames.
func TestExec_HostOutOnlyWhenAsked(t *testing.T) {
	a, _ := hostOutAgent(t)
	p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.HostOut() {
		t.Error("TTY exec got host-connected output")
	}
	p.Wait()
	plain, _ := realAgent(t)
	var out bytes.Buffer
	p, err = run(t, plain, sandbox.ProcessSpec{Cmd: []string{"echo", "hi"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); p.HostOut() || code != 0 || err != nil || out.String() != "hi\n" {
		t.Errorf("without a dialer: host out %v, code %d, err %v, out %q", p.HostOut(), code, err, out.String())
	}
}
