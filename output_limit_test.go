package boxrun_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// A request's output limit applies below the server's: the exec stores
// that many bytes and the marker; a request cannot raise the server's
// limit; a negative limit is VALIDATION_ERROR and creates nothing.
func TestOutput_RequestLimit(t *testing.T) {
	m := boxruntest.NewManager(t, boxrun.WithOutputLimit(5000))
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	cmd := []string{"sh", "-c", "yes 0123456789 | head -c 100000"}
	for _, tc := range []struct{ req, want int64 }{{300, 300}, {1 << 20, 5000}, {0, 5000}} {
		e, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: cmd, OutputLimit: tc.req}, nil, nil)
		if err != nil || e.Status != boxrun.ExecSucceeded {
			t.Fatal(e, err)
		}
		out, errOut := streams(collect(t, m, e.ID, -1))
		if int64(len(out)) != tc.want || errOut != boxrun.TruncationMarker(tc.want) {
			t.Fatalf("limit %d: stored %d bytes, stderr %q; want %d and the marker", tc.req, len(out), errOut, tc.want)
		}
	}
	before, _ := m.ListExecs(ctx, b.ID)
	if _, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: cmd, OutputLimit: -1}, nil, nil); !errors.Is(err, boxrun.ErrInvalid) {
		t.Fatalf("negative output_limit: %v", err)
	}
	if after, _ := m.ListExecs(ctx, b.ID); len(after) != len(before) {
		t.Fatalf("a refused exec left a record: %d execs, want %d", len(after), len(before))
	}
}

// Run holds at most its output limit in memory: a command writing 8 MiB
// returns the first limit bytes, a stderr ending in the truncation marker,
// and its own exit code; the box is gone afterwards.
func TestRun_BoundedOutput(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	res, err := m.Run(ctx, boxrun.RunRequest{Cmd: []string{"sh", "-c", "yes 0123456789 | head -c 8388608; echo bye >&2; exit 4"}, OutputLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == nil || *res.ExitCode != 4 {
		t.Fatalf("exit code %v", res.ExitCode)
	}
	if len(res.Stdout)+len(strings.TrimSuffix(res.Stderr, boxrun.TruncationMarker(4096))) != 4096 || !strings.HasSuffix(res.Stderr, boxrun.TruncationMarker(4096)) {
		t.Fatalf("stdout %d bytes, stderr %q", len(res.Stdout), res.Stderr)
	}
	if !strings.HasPrefix(res.Stdout, "0123456789\n") {
		t.Fatalf("stdout starts %q", res.Stdout[:min(len(res.Stdout), 20)])
	}
	if boxes, err := m.List(ctx, boxrun.BoxFilter{}); err != nil || len(boxes) != 0 {
		t.Fatalf("boxes after run: %v, %v", boxes, err)
	}
	if _, err := m.Run(ctx, boxrun.RunRequest{Cmd: []string{"true"}, OutputLimit: -5}); !errors.Is(err, boxrun.ErrInvalid) {
		t.Fatalf("negative output_limit: %v", err)
	}
	// Within the default limit, nothing is cut.
	res, err = m.Run(ctx, boxrun.RunRequest{Cmd: []string{"sh", "-c", "yes 0123456789 | head -c 100000"}})
	if err != nil || len(res.Stdout) != 100000 || res.Stderr != "" {
		t.Fatalf("default limit: %d bytes, stderr %q, %v", len(res.Stdout), res.Stderr, err)
	}
}
