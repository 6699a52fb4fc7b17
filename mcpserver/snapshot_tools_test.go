package mcpserver_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestGVisor_SnapshotTools: checkpoint, restore and fork through MCP with
// real gVisor boxes; a session cannot reach another session's snapshots
// or boxes; a session's snapshots and boxes go with it.
func TestGVisor_SnapshotTools(t *testing.T) {
	m := gvisorManager(t)
	srv := mcpserver.New(m, mcpserver.Config{})
	defer srv.Close()
	a, _ := connect(t, srv, nil)
	box := ok[boxView](t, a, "create_box", map[string]any{"image": "busybox", "memory_mb": 256, "workdir": "/"})
	ok[execResult](t, a, "exec", map[string]any{"box": box.ID, "shell": `echo kept > /data.txt; setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`})
	count := func(cs *mcp.ClientSession, box string, min int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := ok[execResult](t, cs, "exec", map[string]any{"box": box, "cmd": []string{"cat", "/count"}})
			if n, err := strconv.Atoi(strings.TrimSpace(r.Stdout)); err == nil && n >= min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter of %s did not reach %d (%q)", box, min, r.Stdout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := count(a, box.ID, 10)

	snap := ok[struct {
		ID          string `json:"id"`
		SourceBoxID string `json:"source_box_id"`
		SizeBytes   int64  `json:"size_bytes"`
	}](t, a, "checkpoint", map[string]any{"box": box.ID, "leave_running": true})
	if snap.SourceBoxID != box.ID || snap.SizeBytes <= 0 || !strings.HasPrefix(snap.ID, "snap_") {
		t.Errorf("checkpoint result: %+v", snap)
	}
	r := ok[boxView](t, a, "restore", map[string]any{"snapshot": snap.ID, "name": "mcp-restored"})
	if !r.Owned || r.Status != "running" {
		t.Errorf("restored box: %+v", r)
	}
	count(a, r.ID, before+5)
	forks := ok[struct {
		Boxes []boxView `json:"boxes"`
	}](t, a, "fork", map[string]any{"box": box.ID, "count": 2})
	if len(forks.Boxes) != 2 {
		t.Fatalf("fork: %+v", forks)
	}
	for _, f := range forks.Boxes {
		if !f.Owned {
			t.Errorf("fork not owned by the session: %+v", f)
		}
		count(a, f.ID, before+5)
	}

	// Bad input.
	wantToolError(t, call(t, a, "fork", map[string]any{"box": box.ID, "count": 0}), boxrun.CodeValidationError)
	wantToolError(t, call(t, a, "fork", map[string]any{"box": box.ID, "count": 17}), boxrun.CodeValidationError)
	wantToolError(t, call(t, a, "restore", map[string]any{"snapshot": "snap_nope"}), boxrun.CodeSnapshotNotFound)
	wantToolError(t, call(t, a, "restore", map[string]any{"snapshot": snap.ID, "name": "mcp-restored"}), boxrun.CodeNameAlreadyExists)
	wantToolError(t, call(t, a, "checkpoint", map[string]any{"box": "nope"}), boxrun.CodeBoxNotFound)

	// Another session sees neither A's snapshot nor A's boxes.
	b, _ := connect(t, srv, nil)
	wantToolError(t, call(t, b, "restore", map[string]any{"snapshot": snap.ID}), boxrun.CodeSnapshotNotFound)
	wantToolError(t, call(t, b, "checkpoint", map[string]any{"box": box.ID}), boxrun.CodeBoxNotFound)
	wantToolError(t, call(t, b, "fork", map[string]any{"box": box.ID, "count": 1}), boxrun.CodeBoxNotFound)

	// A ends: its boxes and its snapshot go.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		snaps, _ := m.Snapshots(context.Background())
		if len(snaps) == 0 && len(boxIDs(t, m)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the session: %d snapshots, boxes %v", len(snaps), boxIDs(t, m))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
