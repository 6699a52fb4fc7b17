package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
)

func TestCLI_ServeErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown driver", []string{"serve", "--driver", "nope", "--port", "0"}, 2, `unknown driver "nope"`},
		{"port in use", []string{"serve", "--port", port}, 1, "Error: Failed to bind 127.0.0.1:" + port},
		{"args", []string{"serve", "extra"}, 2, "serve takes no arguments"},
		{"no token off loopback", []string{"serve", "--host", "0.0.0.0", "--port", "0"}, 1, "refusing to listen on 0.0.0.0 without a token"},
		{"socket group without socket", []string{"serve", "--port", "0", "--socket-group", "0"}, 2, "--socket-group needs --socket"},
		{"unknown socket group", []string{"serve", "--socket", "/nonexistent/s.sock", "--socket-group", "no-such-group-boxrun"}, 2, `--socket-group "no-such-group-boxrun"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			state := filepath.Join(t.TempDir(), "state")
			args := append([]string{"--state-dir", state}, tc.args...)
			err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
			if got := exitCode(err); got != tc.wantCode || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", got, tc.wantCode, errb.String(), tc.want)
			}
			if tc.name != "port in use" {
				if _, err := os.Stat(state); !os.IsNotExist(err) {
					t.Errorf("a refused serve touched the state directory: %v", err)
				}
			}
		})
	}
}

// A second serve on a state directory in use says so and who holds it, and
// leaves the holder's running exec alone.
func TestCLI_ServeStateDirInUse(t *testing.T) {
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	defer m.Close()
	ctx := context.Background()
	b, err := m.Create(ctx, boxrun.BoxSpec{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	args := []string{"--state-dir", dir, "serve", "--socket", filepath.Join(t.TempDir(), "s.sock")}
	err = run(ctx, args, strings.NewReader(""), &out, &errb)
	want := fmt.Sprintf("is in use by another BoxRun server (pid %d)", os.Getpid())
	if exitCode(err) != 1 || !strings.Contains(errb.String(), want) {
		t.Fatalf("exit %d, stderr %q; want %q", exitCode(err), errb.String(), want)
	}
	if got, err := m.GetExec(ctx, e.ID); err != nil || got.Status != boxrun.ExecRunning {
		t.Fatalf("exec after the refused serve = %+v, %v", got, err)
	}
	if _, err := m.CancelExec(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
}

// TestCLI_ServeGvisor runs `serve` in-process over TCP with the gVisor
// driver, checks the spec §13 lines and a client round trip, then stops it
// with ctx (Ctrl-C): a clean exit.
func TestCLI_ServeGvisor(t *testing.T) {
	state := t.TempDir()
	for _, kv := range gvisorEnv(t, state) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BOXRUN_") {
			t.Setenv(k, v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb boxruntest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--port", "0", "--max-cpu", "3"}, strings.NewReader(""), &out, &errb)
	}()
	re := regexp.MustCompile(`Starting BoxRun server on (http://127\.0\.0\.1:\d+)\n`)
	deadline := time.Now().Add(30 * time.Second)
	var url string
	for url == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s%s", err, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start line:\n%s%s", out.String(), errb.String())
		}
	}
	if !strings.Contains(out.String(), "Dashboard: "+url+"/ui") {
		t.Errorf("no dashboard line: %s", out.String())
	}
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.MaxCPU != 3 {
		t.Errorf("info %+v, %v; want max_cpu 3 from --max-cpu", info, err)
	}
	if _, err := os.Stat(filepath.Join(state, "boxrun.db")); err != nil {
		t.Errorf("no database in the state dir: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if exitCode(err) != 0 {
			t.Errorf("serve after Ctrl-C: %v (exit %d)", err, exitCode(err))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
