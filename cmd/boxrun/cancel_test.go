package main

import (
	"context"
	"strings"
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
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	var out, errb strings.Builder
	err = run(cctx, []string{"--url", s.url, "--autostart=false", "exec", "int", "sh", "-c", "echo started; sleep 30"},
		strings.NewReader(""), &out, &errb)
	if got := exitCode(err); got != 130 {
		t.Errorf("exit %d, want 130 (err %v)", got, err)
	}
	if d := time.Since(start); d > 10*time.Second {
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
