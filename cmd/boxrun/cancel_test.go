package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
)

// TestCLI_InterruptExec cancels run's ctx (what Ctrl-C does through
// signal.NotifyContext) during `exec`: the CLI exits 130 at once and the
// exec is canceled on the server.
func TestCLI_InterruptExec(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	box, err := s.m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "int"})
	if err != nil {
		t.Fatal(err)
	}
	// Interrupt once the command has started (not after a fixed delay: a
	// loaded machine may take longer to start it).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &onOutput{want: "started", fn: cancel}
	start := time.Now()
	var errb strings.Builder
	err = run(cctx, []string{"--url", s.url, "--autostart=false", "exec", "int", "sh", "-c", "echo started; sleep 30"},
		strings.NewReader(""), out, &errb)
	if got := exitCode(err); got != 130 {
		t.Errorf("exit %d, want 130 (err %v)", got, err)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(out.String(), "started") {
		t.Errorf("stdout %q", out.String())
	}
	execs, err := s.m.ListExecs(ctx, box.ID)
	if err != nil || len(execs) != 1 || execs[0].Status != boxrun.ExecCanceled {
		t.Errorf("execs after interrupt: %+v, %v", execs, err)
	}
}

// onOutput collects what is written to it and calls fn once the text
// contains want.
type onOutput struct {
	want string
	fn   func()
	mu   sync.Mutex
	b    strings.Builder
	done bool
}

func (w *onOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.done && strings.Contains(w.b.String(), w.want) {
		w.done = true
		w.fn()
	}
	return len(p), nil
}

func (w *onOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
