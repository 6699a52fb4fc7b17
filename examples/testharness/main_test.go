package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

// TestRun runs the harness against a Manager over the fake driver: fast and
// hermetic, the same code path as production minus the isolation.
func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	if got, want := strings.Count(out, "PASS "), len(suite()); got != want {
		t.Errorf("%d PASS lines, want %d:\n%s", got, want, out)
	}
}

// TestBoxPerTest shows the other way to embed BoxRun in Go tests: a box per
// test, created in the test and removed by t.Cleanup, with subtests per case.
func TestBoxPerTest(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Env: map[string]string{"SUITE": "harness"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), box.ID, true) })
	if err := m.UploadFile(ctx, box.ID, "/root/marker.txt", strings.NewReader("from setup\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range suite() {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			req := boxrun.ExecRequest{Cmd: []string{"sh", "-c", tc.cmd}}
			if tc.stdin != "" {
				req.Stdin = strings.NewReader(tc.stdin)
			}
			e, err := m.Exec(ctx, box.ID, req, &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := *e.ExitCode; got != tc.wantExit {
				t.Errorf("exit %d, want %d", got, tc.wantExit)
			}
			if got := out.String(); got != tc.want {
				t.Errorf("stdout %q, want %q", got, tc.want)
			}
		})
	}
}
