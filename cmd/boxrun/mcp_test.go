package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpFixture is a gVisor-backed `boxrun serve` on a Unix socket in a fresh
// state dir, for `boxrun mcp` processes to drive.
type mcpFixture struct {
	bin, state, ref string
	env             []string
	api             *client.Client
}

func newMCPFixture(t *testing.T, bin string) *mcpFixture {
	t.Helper()
	state := t.TempDir()
	env := gvisorEnv(t, state)
	sock := filepath.Join(state, "boxrun.sock")
	img := filepath.Join(t.TempDir(), "busybox-oci")
	if r := cliProc(t, env, "", bin, "images", "build-busybox", img); r.code != 0 {
		t.Fatalf("build-busybox: %+v", r)
	}
	logf, err := os.Create(filepath.Join(state, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "serve", "--socket", sock)
	srv.Env, srv.Stdout, srv.Stderr = env, logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	api, err := client.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		boxes, _ := api.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			api.Remove(context.Background(), b.ID, true)
		}
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		for _, pid := range serverPIDs(bin, sock) { // one that a client auto-started
			syscall.Kill(pid, syscall.SIGTERM)
		}
		logf.Close()
	})
	// Wait until the server answers (it listens before its Manager is
	// open), so that `boxrun mcp` finds it instead of starting its own.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := api.Info(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", lastLines(filepath.Join(state, "serve.log"), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &mcpFixture{bin: bin, state: state, ref: "oci:" + img, env: env, api: api}
}

// connect starts `boxrun mcp args...` and connects the official Go SDK
// client to it over its stdin and stdout. Closing the returned stdin is the
// client vanishing (a graceful ClientSession.Close would first wait for the
// calls in flight).
func (f *mcpFixture) connect(t *testing.T, opts *mcp.ClientOptions, args ...string) (*mcp.ClientSession, *exec.Cmd, io.Closer) {
	t.Helper()
	cmd := exec.Command(f.bin, append([]string{"mcp"}, args...)...)
	cmd.Env = f.env
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := mcp.NewClient(&mcp.Implementation{Name: "go-stdio-test", Version: "1"}, opts)
	cs, err := c.Connect(context.Background(), &mcp.IOTransport{Reader: stdout, Writer: stdin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs, cmd, stdin
}

// mcpCall calls a tool and decodes its structured result, failing on any error.
func mcpCall(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if res.IsError {
		t.Fatalf("%s(%v): tool error %s", name, args, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %s: %v", name, b, err)
		}
	}
}

// waitExec waits until box has an exec in (running) or no running exec (!running).
func (f *mcpFixture) waitExec(t *testing.T, box string, running bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		xs, err := f.api.ListExecs(context.Background(), box)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range xs {
			if x.Status == boxapi.ExecRunning {
				n++
			}
		}
		if (n > 0) == running {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("box %s: running exec never %v", box, running)
}

// testMCPStdio is the agent session against the real binary over stdio:
// tools, a box, exec with streamed progress, files, cancel, and a client
// that disconnects mid-exec.
func testMCPStdio(t *testing.T, f *mcpFixture) {
	var mu sync.Mutex
	var progress []string
	cs, cmd, stdin := f.connect(t, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, r.Params.Message)
		mu.Unlock()
	}})
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 12 { // 9 box, exec and file tools + checkpoint, restore, fork
		t.Fatalf("tools: %d, %v", len(tools.Tools), err)
	}
	var box, kept struct{ ID string }
	mcpCall(t, cs, "create_box", map[string]any{"image": f.ref}, &box)
	mcpCall(t, cs, "create_box", map[string]any{"image": f.ref, "keep": true, "name": "kept"}, &kept)

	params := &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": box.ID,
		"shell": "for i in 1 2 3 4 5; do echo step$i; sleep 0.5; done"}}
	params.SetProgressToken(7)
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("exec: %v", err)
	}
	var er struct {
		ExitCode *int   `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &er)
	mu.Lock()
	streamed := strings.Join(progress, "")
	n := len(progress)
	mu.Unlock()
	if er.ExitCode == nil || *er.ExitCode != 0 || er.Stdout != "step1\nstep2\nstep3\nstep4\nstep5\n" {
		t.Errorf("exec result %s", b)
	}
	if n < 2 || !strings.Contains(streamed, "step1\n") {
		t.Errorf("progress: %d notifications %q", n, streamed)
	}

	mcpCall(t, cs, "write_file", map[string]any{"box": box.ID, "path": "/root/note.txt", "content": "stdio works\n"}, nil)
	var rf struct{ Content string }
	mcpCall(t, cs, "read_file", map[string]any{"box": box.ID, "path": "/root/note.txt"}, &rf)
	if rf.Content != "stdio works\n" {
		t.Errorf("read_file %q", rf.Content)
	}
	bad, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": box.ID, "cmd": []string{"true"}, "timeout_seconds": -5}})
	if err != nil || !bad.IsError || !strings.HasPrefix(bad.Content[0].(*mcp.TextContent).Text, "VALIDATION_ERROR: ") {
		t.Errorf("negative timeout: %v %+v", err, bad)
	}

	// Cancel a long exec from the client.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cs.CallTool(cctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": box.ID, "cmd": []string{"sleep", "300"}}})
	}()
	f.waitExec(t, box.ID, true)
	cancel()
	<-done
	f.waitExec(t, box.ID, false)

	// Disconnect mid-exec: the client goes away (stdin closes) while a
	// command runs in the kept box; the process ends, the temporary box goes,
	// the kept box stays with nothing running.
	go cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"box": "kept", "cmd": []string{"sleep", "300"}}})
	f.waitExec(t, kept.ID, true)
	stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("boxrun mcp after its client went: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("boxrun mcp did not exit after its client went")
	}
	f.waitExec(t, kept.ID, false)
	var out strings.Builder
	if _, err := f.api.Exec(ctx, kept.ID, boxapi.ExecRequest{Cmd: []string{"ps"}}, &out, nil); err != nil || strings.Contains(out.String(), "sleep") {
		t.Errorf("after disconnect: ps %q, %v", out.String(), err)
	}
	if _, err := f.api.Get(ctx, box.ID); err == nil {
		t.Errorf("box %s outlived the stdio session", box.ID)
	}
}

// TestCLI_MCP runs `boxrun mcp` (the real binary) with the official Go SDK
// client and with the TypeScript SDK against a gVisor-backed server.
func TestCLI_MCP(t *testing.T) {
	bin := buildCLI(t)
	f := newMCPFixture(t, bin)
	t.Run("GoSDK", func(t *testing.T) { testMCPStdio(t, f) })
	t.Run("TypeScriptSDK", func(t *testing.T) { testMCPTypeScript(t, f) })
}

// testMCPTypeScript runs the session script of the TypeScript SDK
// (tests/mcp-ts; `make mcp-ts-deps` installs it) against `boxrun mcp`.
func testMCPTypeScript(t *testing.T, f *mcpFixture) {
	node, err := exec.LookPath("node")
	if err != nil {
		boxruntest.SkipEnv(t, "node not found (the TypeScript MCP SDK test needs Node)")
	}
	dir, _ := filepath.Abs("../../tests/mcp-ts")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		boxruntest.SkipEnv(t, "TypeScript MCP SDK not installed (make mcp-ts-deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "session.mjs"))
	cmd.Env = append(f.env, "BOXRUN_BIN="+f.bin, "BOXRUN_MCP_IMAGE="+f.ref)
	out, err := cmd.CombinedOutput()
	t.Logf("node session.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("TypeScript session failed: %v", err)
	}
	if !strings.Contains(string(out), "typescript session ok") {
		t.Fatal("the script did not finish")
	}
	boxes, err := f.api.List(ctx, boxapi.BoxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.Name == "ts-session" {
			t.Errorf("the TypeScript session's box %s outlived it", b.ID)
		}
	}
}
