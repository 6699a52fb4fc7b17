//go:build linux

package agentexec_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/sandbox"
)

// waitPrepared calls run until an exec reports a prepared output pair
// (PrepareOut runs in the background).
func waitPrepared(t *testing.T, run func() (prepared bool)) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if run() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no exec got a prepared output pair")
}

// Prepared output pairs: once the host prepared one, an exec starts on it
// (exact stdout, stderr and exit code), the next one is prepared in the
// background, so every later exec gets one; no socket is left in the
// agent's directory.
func TestExec_PreparedPair(t *testing.T) {
	a, dir := hostOutAgent(t)
	a.Conn.PrepareOut()
	exec := func(i int) bool {
		var out, errb bytes.Buffer
		p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", fmt.Sprintf("echo out%d; echo err%d >&2; exit %d", i, i, i%3)}, Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		if err != nil || code != i%3 || out.String() != fmt.Sprintf("out%d\n", i) || errb.String() != fmt.Sprintf("err%d\n", i) {
			t.Fatalf("exec %d: code %d err %v out %q err %q", i, code, err, out.String(), errb.String())
		}
		if !p.HostOut() {
			t.Fatalf("exec %d: relayed output", i)
		}
		return p.Prepared()
	}
	i := 0
	waitPrepared(t, func() bool { i++; return exec(i) })
	got := 0
	for j := range 10 {
		if exec(100 + j) {
			got++
		}
		time.Sleep(20 * time.Millisecond) // the next pair is prepared meanwhile
	}
	if got < 8 {
		t.Errorf("%d of 10 execs got a prepared pair, want nearly all", got)
	}
	waitNoSockets(t, dir)
}

// runTrue runs true and reports whether it got a prepared pair.
func runTrue(t *testing.T, a *agentexec.Agent) bool {
	t.Helper()
	p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Prepared()
}

// pairedAgent is hostOutAgent once an exec used a prepared pair and the
// next pair is ready.
func pairedAgent(t *testing.T) (*agentexec.Agent, string) {
	t.Helper()
	a, dir := hostOutAgent(t)
	a.Conn.PrepareOut()
	waitPrepared(t, func() bool { return runTrue(t, a) })
	for deadline := time.Now().Add(10 * time.Second); a.Conn.ReadyPairToken() == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the next pair was not prepared")
		}
	}
	return a, dir
}

// waitNoSockets waits until dir holds nothing (a preparation under way may
// still listen for a moment).
func waitNoSockets(t *testing.T, dir string) {
	t.Helper()
	var ents []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ents, _ = os.ReadDir(dir); len(ents) == 0 {
			return
		}
	}
	t.Errorf("sockets left in %s: %v", dir, ents)
}

// A pair the agent dropped (as it does before a checkpoint) is not used:
// the exec falls back to its own output socket with exact output, and the
// host closes its side of the dropped pair.
func TestExec_PreparedPairDropped(t *testing.T) {
	a, dir := pairedAgent(t)
	theAgent().DropOutPairs(nil)
	var out bytes.Buffer
	p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"echo", "fallback"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil || out.String() != "fallback\n" || p.Prepared() || !p.HostOut() {
		t.Fatalf("after the drop: code %d err %v out %q prepared %v hostout %v", code, err, out.String(), p.Prepared(), p.HostOut())
	}
	waitNoSockets(t, dir)
}

// A pair belongs to the connection that prepared it: another connection
// naming its token does not get it (its exec uses its own socket), and the
// owner's exec still does.
func TestExec_PreparedPairOtherSession(t *testing.T) {
	a, _ := pairedAgent(t)
	token := a.Conn.ReadyPairToken()
	if token == "" {
		t.Fatal("no pair ready")
	}
	other, _ := hostOutAgent(t)
	var out bytes.Buffer
	req := &agentproto.Request{Cmd: []string{"echo", "other"}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/", HostOut: true, OutPair: token}
	p, err := other.Conn.Exec(context.Background(), req, nil, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); code != 0 || err != nil || out.String() != "other\n" || p.Prepared() {
		t.Fatalf("other session: code %d err %v out %q prepared %v", code, err, out.String(), p.Prepared())
	}
	if !runTrue(t, a) {
		t.Error("the owner's exec did not get its pair")
	}
}
