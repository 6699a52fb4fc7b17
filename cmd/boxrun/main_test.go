package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/image"
)

// testServer is a real httpapi server on loopback over a fake-driver Manager.
type testServer struct {
	url      string
	m        *boxrun.Manager
	stateDir string
}

// newTestServer serves a Manager without an image store (images are plain
// names the fake driver ignores).
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return serveManager(t, boxruntest.NewManager(t))
}

// newImageServer serves a Manager with a real image store.
func newImageServer(t *testing.T) *testServer {
	t.Helper()
	imgs, err := image.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return serveManager(t, boxruntest.NewManager(t, boxrun.WithImages(imgs)))
}

func serveManager(t *testing.T, m *boxrun.Manager) *testServer {
	t.Helper()
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); httpapi.New(m).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &testServer{url: "http://" + ln.Addr().String(), m: m, stateDir: t.TempDir()}
}

// cliResult is the outcome of one run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// run runs the CLI against s with stdin.
func (s *testServer) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb strings.Builder
	full := append([]string{"--url", s.url, "--state-dir", s.stateDir, "--autostart=false"}, args...)
	err := run(ctx, full, strings.NewReader(stdin), &out, &errb)
	return cliResult{exitCode(err), out.String(), errb.String()}
}

// cliCase is one row of a CLI table.
type cliCase struct {
	name        string
	args        []string
	stdin       string
	wantCode    int
	wantStdout  []string // substrings
	wantStderr  []string // substrings
	wantNotOut  []string // substrings that must not appear on stdout
	exactStdout *string
}

func str(s string) *string { return &s }

func runTable(t *testing.T, s *testServer, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.run(t, tc.stdin, tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("boxrun %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("boxrun %s: stdout lacks %q:\n%s", strings.Join(tc.args, " "), w, r.stdout)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("boxrun %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), w, r.stderr)
				}
			}
			for _, w := range tc.wantNotOut {
				if strings.Contains(r.stdout, w) {
					t.Errorf("boxrun %s: stdout has %q:\n%s", strings.Join(tc.args, " "), w, r.stdout)
				}
			}
			if tc.exactStdout != nil && r.stdout != *tc.exactStdout {
				t.Errorf("boxrun %s: stdout %q, want %q", strings.Join(tc.args, " "), r.stdout, *tc.exactStdout)
			}
		})
	}
}

func TestCLI_Boxes(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	if _, err := s.m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	cold, err := s.m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "cold"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.m.Stop(ctx, cold.ID); err != nil {
		t.Fatal(err)
	}
	runTable(t, s, []cliCase{
		{name: "version", args: []string{"version"}, exactStdout: str("boxrun 0.3.0 (go)\n")},
		{name: "--version", args: []string{"--version"}, wantStdout: []string{"boxrun 0.3.0"}},
		{name: "help", args: []string{"--help"}, wantStderr: []string{"USAGE", "exec", "serve"}},
		{name: "exec help", args: []string{"exec", "-h"}, wantStderr: []string{"boxrun exec [flags] BOX CMD"}},
		{name: "unknown command", args: []string{"bogus"}, wantCode: 2, wantStderr: []string{`unknown command "bogus"`}},
		{name: "unknown flag", args: []string{"ls", "--bogus"}, wantCode: 2, wantStderr: []string{"flag provided but not defined"}},
		{name: "missing args", args: []string{"exec", "web"}, wantCode: 2, wantStderr: []string{"Error: exec needs BOX and CMD"}},
		{name: "info", args: []string{"info"}, wantStdout: []string{"Max CPU:    64", "Max memory: 65536 MB"}},
		{name: "info json", args: []string{"info", "--json"}, wantStdout: []string{`"max_cpu": 64`}},
		{name: "ls", args: []string{"ls"}, wantStdout: []string{"ID", "NAME", "STATUS", "web", "cold", "running", "stopped", "1024MB", "8G"}},
		{name: "list alias", args: []string{"list", "-s", "stopped"}, wantStdout: []string{"cold"}, wantNotOut: []string{"web"}},
		{name: "ls json", args: []string{"ls", "--json"}, wantStdout: []string{`"name": "web"`, `"boxlite_id"`}},
		{name: "ls quiet", args: []string{"ls", "-q", "--status", "running"}, wantStdout: []string{"box_"}, wantNotOut: []string{"web"}},
		{name: "inspect", args: []string{"inspect", "web"}, wantStdout: []string{`"status": "running"`, `"workdir": "/root"`}},
		{name: "inspect missing", args: []string{"inspect", "nope"}, wantCode: 1,
			wantStderr: []string{"Error: [BOX_NOT_FOUND] Box 'nope' not found", "Hint: List available boxes with: boxrun ls"}},
		{name: "exec", args: []string{"exec", "web", "echo", "hi", "there"}, exactStdout: str("hi there\n")},
		{name: "exec stderr", args: []string{"exec", "web", "sh", "-c", "echo oops >&2"}, wantStderr: []string{"oops"}, exactStdout: str("")},
		{name: "exec exit code", args: []string{"exec", "web", "sh", "-c", "exit 3"}, wantCode: 3},
		{name: "exec env", args: []string{"exec", "-e", "A=b", "--env", "C=d", "web", "sh", "-c", "echo $A$C"}, exactStdout: str("bd\n")},
		{name: "exec double dash", args: []string{"exec", "web", "--", "echo", "-n", "x"}, exactStdout: str("x")},
		{name: "exec workdir", args: []string{"exec", "-w", "/root/sub", "web", "pwd"}, wantStdout: []string{"/root/sub"}},
		{name: "exec timeout", args: []string{"exec", "-t", "1", "web", "sleep", "20"}, wantCode: 137, wantStderr: []string{"boxrun: "}},
		{name: "exec detach", args: []string{"exec", "-d", "web", "true"}, wantStdout: []string{"exec_"}},
		{name: "exec interactive", args: []string{"exec", "-i", "web", "sh", "-c", "read x; echo got:$x; exit 6"}, stdin: "abc\n",
			wantCode: 6, wantStdout: []string{"got:abc"}},
		{name: "exec tty env", args: []string{"exec", "--tty", "-e", "Q=z", "web", "sh", "-c", "echo q=$Q"}, wantStdout: []string{"q=z"}},
		{name: "exec not running", args: []string{"exec", "cold", "true"}, wantCode: 1,
			wantStderr: []string{"Error: [BOX_NOT_RUNNING] Box 'cold' is not running", "Hint: Start the box first"}},
		{name: "attach cmd", args: []string{"attach", "web", "sh", "-c", "echo attached; exit 2"}, wantCode: 2, wantStdout: []string{"attached"}},
		{name: "attach stopped", args: []string{"attach", "cold"}, wantCode: 1, wantStderr: []string{"[BOX_NOT_RUNNING]"}},
		{name: "start running", args: []string{"start", "web"}, wantCode: 1,
			wantStderr: []string{"[BOX_ALREADY_RUNNING]", "Hint: Stop it first"}},
		{name: "create", args: []string{"create", "--name", "web2", "--cpus", "1", "-m", "512m", "busybox"},
			wantStdout: []string{"box_", "Name: web2", "Status: running"}},
		{name: "create duplicate", args: []string{"create", "-n", "web2", "busybox"}, wantCode: 1,
			wantStderr: []string{"[NAME_ALREADY_EXISTS]", "Hint: Use a different name"}},
		{name: "create json", args: []string{"create", "--json", "--memory", "1g", "-e", "K=V", "busybox"},
			wantStdout: []string{`"memory_mb": 1024`, `"K": "V"`}},
		{name: "create bad volume", args: []string{"create", "-v", "rel:/x", "busybox"}, wantCode: 2, wantStderr: []string{"Invalid volume"}},
		{name: "create bad volume mode", args: []string{"create", "-v", "/tmp:/x:xx", "busybox"}, wantCode: 2, wantStderr: []string{"Invalid volume mode: xx"}},
		{name: "create over limit", args: []string{"create", "--cpus", "100", "busybox"}, wantCode: 1, wantStderr: []string{"[RESOURCE_EXCEEDED]"}},
		{name: "inspect created", args: []string{"inspect", "web2"}, wantStdout: []string{`"cpu": 1`, `"memory_mb": 512`}},
		{name: "rm running", args: []string{"rm", "web2"}, wantCode: 1, wantStderr: []string{"[BOX_ALREADY_RUNNING]"}},
		{name: "stop", args: []string{"stop", "web2"}, wantStdout: []string{"Stopped box_"}},
		{name: "stop stopped", args: []string{"stop", "web2"}, wantCode: 1, wantStderr: []string{"[BOX_NOT_RUNNING]"}},
		{name: "start", args: []string{"start", "web2"}, wantStdout: []string{"Started box_"}},
		{name: "rm force after name", args: []string{"rm", "web2", "-f"}, exactStdout: str("Removed web2\n")},
		{name: "rm missing", args: []string{"rm", "web2"}, wantCode: 1, wantStderr: []string{"[BOX_NOT_FOUND]"}},
		{name: "run", args: []string{"run", "busybox", "sh", "-c", "echo out; echo err >&2"}, exactStdout: str("out\n"), wantStderr: []string{"err"}},
		{name: "run exit code", args: []string{"run", "-e", "X=9", "busybox", "sh", "-c", "exit $X"}, wantCode: 9},
		{name: "run keep", args: []string{"run", "--rm=false", "--name", "kept", "busybox", "echo", "streamed"},
			exactStdout: str("streamed\n"), wantStderr: []string{"Created box box_"}},
		{name: "run keep left the box", args: []string{"ls"}, wantStdout: []string{"kept"}},
		{name: "run name needs keep", args: []string{"run", "--name", "x", "busybox", "true"}, wantCode: 2},
		{name: "gc none", args: []string{"gc"}, exactStdout: str("Removed 0 box(es)\n")},
		{name: "gc stopped", args: []string{"gc", "--older-than", "0"}, exactStdout: str("Removed 1 box(es)\n")},
		{name: "gc removed cold", args: []string{"ls", "-q", "-s", "stopped"}, exactStdout: str("")},
		{name: "images aliases", args: []string{"images", "aliases"}, wantStdout: []string{"ALIAS", "alpine", "alpine:3.20", "ubuntu:24.04"}},
		{name: "completion bash", args: []string{"completion", "bash"}, wantStdout: []string{"complete -F _boxrun boxrun", "serve"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, wantStdout: []string{"#compdef boxrun"}},
		{name: "completion fish", args: []string{"completion", "fish"}, wantStdout: []string{"complete -c boxrun"}},
		{name: "completion bad", args: []string{"completion", "tcsh"}, wantCode: 2},
	})
}

func TestCLI_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out, errb strings.Builder
	err = run(context.Background(), []string{"--url", "http://" + addr, "ls"}, strings.NewReader(""), &out, &errb)
	if got := exitCode(err); got != 1 {
		t.Errorf("exit %d, want 1", got)
	}
	if !strings.Contains(errb.String(), "Error: Cannot connect to BoxRun server.") || !strings.Contains(errb.String(), "Start it with: boxrun serve") {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestCLI_ConfigAndEnv(t *testing.T) {
	s := newTestServer(t)
	cfgFile := filepath.Join(t.TempDir(), "boxrun.conf")
	writeFile(t, cfgFile, "url "+s.url+"\nautostart false\n")
	var out, errb strings.Builder
	err := run(context.Background(), []string{"--config", cfgFile, "info", "--json"}, strings.NewReader(""), &out, &errb)
	if err != nil || !strings.Contains(out.String(), `"max_cpu": 64`) {
		t.Errorf("info via config file: %v\n%s%s", err, out.String(), errb.String())
	}
	t.Setenv("BOXRUN_URL", s.url)
	t.Setenv("BOXRUN_AUTOSTART", "false")
	out.Reset()
	err = run(context.Background(), []string{"info", "--json"}, strings.NewReader(""), &out, &errb)
	if err != nil || !strings.Contains(out.String(), `"max_memory_mb": 65536`) {
		t.Errorf("info via BOXRUN_URL: %v\n%s%s", err, out.String(), errb.String())
	}
}

func TestCLI_Events(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	b, err := s.m.Create(ctx, boxrun.BoxSpec{Image: "busybox", Name: "ev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.m.Stop(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	// Replay from the start, then stop (as Ctrl-C would) once both are seen.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out boxruntest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(cctx, []string{"--url", s.url, "--autostart=false", "events", "--since", "0", "--box", b.ID},
			strings.NewReader(""), &out, &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "box.stopped") {
		if time.Now().After(deadline) {
			t.Fatalf("events output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := exitCode(<-done); code != 130 {
		t.Errorf("exit %d after interrupt, want 130", code)
	}
	for _, want := range []string{"box.created #", "status=running name=ev", "box.stopped #", "status=stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("events output lacks %q:\n%s", want, out.String())
		}
	}
}
