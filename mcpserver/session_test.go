package mcpserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// agentSession is what an agent does with a box: list tools, create a box,
// exec with streamed progress, write/read/list files, read a file as a
// resource, cancel a long exec, remove the box.
func agentSession(t *testing.T, cs *mcp.ClientSession, svc boxrun.Service, prog *progressLog) {
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) < 9 {
		t.Fatalf("tools %v, %v", tools, err)
	}
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "busybox", "name": "agent", "memory_mb": 256})
	if box.Status != "running" || !box.Owned {
		t.Fatalf("created %+v", box)
	}

	// exec with progress: the output arrives while the command runs.
	params := &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": "agent",
		"shell": "for i in 1 2 3 4; do echo tick$i; sleep 0.4; done; uname -r >&2"}}
	params.SetProgressToken("p1")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("exec: %v %s", err, text(res))
	}
	var er execResult
	decodeInto(t, res, &er)
	if er.ExitCode == nil || *er.ExitCode != 0 || er.Stdout != "tick1\ntick2\ntick3\ntick4\n" || er.Status != "succeeded" {
		t.Errorf("exec result %+v", er)
	}
	if !strings.Contains(er.Stderr, "gvisor") && !strings.Contains(er.Stderr, "4.4") {
		t.Errorf("not in a gVisor kernel? uname -r: %q", er.Stderr)
	}
	msgs := prog.all()
	if len(msgs) < 2 || !strings.Contains(strings.Join(msgs, ""), "tick1\ntick2\n") {
		t.Errorf("progress notifications %q; want the output in several", msgs)
	}

	// Files.
	ok[map[string]any](t, cs, "write_file", map[string]any{"box": box.ID, "path": "/work/hello.txt", "content": "hello, box\n"})
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	ok[map[string]any](t, cs, "write_file", map[string]any{"box": box.ID, "path": "/work/blob",
		"content": base64.StdEncoding.EncodeToString(bin), "encoding": "base64"})
	if r := ok[readFileResult](t, cs, "read_file", map[string]any{"box": box.ID, "path": "/work/hello.txt"}); r.Content != "hello, box\n" || r.Encoding != "utf8" {
		t.Errorf("read_file %+v", r)
	}
	if r := ok[readFileResult](t, cs, "read_file", map[string]any{"box": box.ID, "path": "/work/blob"}); r.Encoding != "base64" ||
		r.Content != base64.StdEncoding.EncodeToString(bin) {
		t.Errorf("read_file of binary %+v", r)
	}
	var dir struct {
		Entries []struct{ Name, Type string } `json:"entries"`
	}
	dir = ok[struct {
		Entries []struct{ Name, Type string } `json:"entries"`
	}](t, cs, "list_dir", map[string]any{"box": box.ID, "path": "/work"})
	if len(dir.Entries) != 2 || dir.Entries[0].Name != "blob" || dir.Entries[1].Name != "hello.txt" || dir.Entries[1].Type != "file" {
		t.Errorf("list_dir %+v", dir.Entries)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "boxrun://agent/work/hello.txt"})
	if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "hello, box\n" {
		t.Errorf("resource: %+v, %v", rr, err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "boxrun://agent/no/such"}); err == nil {
		t.Error("resource of a missing file: no error")
	}
	// A path that tries to climb out of the box is refused; one that the
	// box resolves stays inside it (the box's own /etc/hostname).
	wantToolError(t, call(t, cs, "read_file", map[string]any{"box": box.ID, "path": "/work/../../../etc/shadow"}), boxrun.CodeValidationError)
	ok[map[string]any](t, cs, "exec", map[string]any{"box": box.ID, "cmd": []string{"ln", "-s", "/../../../../etc", "/work/up"}})
	if r := call(t, cs, "read_file", map[string]any{"box": box.ID, "path": "/work/up/hostname"}); !r.IsError {
		var rf readFileResult
		decodeInto(t, r, &rf)
		if host, _ := os.Hostname(); host != "" && strings.TrimSpace(rf.Content) == host {
			t.Errorf("a symlink in the box read the host's /etc/hostname")
		}
	}

	// Cancel a long exec (notifications/cancelled): the process is gone.
	interruptExec(t, cs, svc, box.ID, func(cancelCall context.CancelFunc) { cancelCall() })

	ok[map[string]any](t, cs, "stop_box", map[string]any{"box": box.ID})
	ok[map[string]any](t, cs, "start_box", map[string]any{"box": box.ID})
	if r := ok[readFileResult](t, cs, "read_file", map[string]any{"box": box.ID, "path": "/work/hello.txt"}); r.Content != "hello, box\n" {
		t.Errorf("after restart: %+v", r)
	}
	ok[map[string]any](t, cs, "remove_box", map[string]any{"box": box.ID})
	if _, ok := boxIDs(t, svc)[box.ID]; ok {
		t.Error("remove_box left the box")
	}
}

// interruptExec runs `sleep 300` in box through the exec tool, calls
// interrupt while it runs (with the call's cancel function: cancel it, or
// disconnect the client), and checks that the call returns, the exec is no
// longer running and no sleep process is left in the box (unless the box
// went with the session).
func interruptExec(t *testing.T, cs *mcp.ClientSession, svc boxrun.Service, box string, interrupt func(context.CancelFunc)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": box, "cmd": []string{"sleep", "300"}}})
	}()
	waitRunningExec(t, svc, box)
	interrupt(cancel)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted call did not return")
	}
	waitNoRunningExec(t, svc, box)
}

// waitRunningExec waits until box has a running exec.
func waitRunningExec(t *testing.T, svc boxrun.Service, box string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		xs, err := svc.ListExecs(context.Background(), box)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if x.Status == boxrun.ExecRunning {
				return x.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no exec started")
	return ""
}

// waitNoRunningExec waits until box has no running exec and no sleep
// process, or the box is gone.
func waitNoRunningExec(t *testing.T, svc boxrun.Service, box string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		xs, err := svc.ListExecs(context.Background(), box)
		if errors.Is(err, boxrun.ErrNotFound) {
			return // the box went with the session
		}
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, x := range xs {
			if x.Status == boxrun.ExecRunning {
				running++
			}
		}
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d execs still running", running)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var out strings.Builder
	if _, err := svc.Exec(context.Background(), box, boxrun.ExecRequest{Cmd: []string{"ps"}}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "sleep") {
		t.Errorf("a sleep process is still running in the box:\n%s", out.String())
	}
}

func decodeInto(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
