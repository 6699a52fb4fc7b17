package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
)

// gvisorEnv returns the environment for CLI processes that may start a
// gVisor-backed server, or skips the test where runsc cannot run.
func gvisorEnv(t *testing.T, stateDir string) []string {
	t.Helper()
	testenv.NeedRoot(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Skip(t, "no /bin/busybox (apt install busybox-static)")
	}
	runsc := os.Getenv(gvisor.RunscEnv)
	if runsc == "" {
		runsc, _ = filepath.Abs("../../bin/runsc")
	}
	if _, err := os.Stat(runsc); err != nil {
		testenv.Skip(t, fmt.Sprintf("no runsc at %s (cd tools && CGO_ENABLED=0 go build -o ../bin/runsc gvisor.dev/gvisor/runsc)", runsc))
	}
	initPath := os.Getenv(gvisor.InitEnv)
	if initPath == "" {
		initPath = filepath.Join(t.TempDir(), gvisor.InitName)
		if err := gvisor.BuildInit(context.Background(), initPath); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "BOXRUN_URL", "BOXRUN_HOST", "BOXRUN_PORT", "BOXRUN_SOCKET", "BOXRUN_TOKEN", "BOXRUN_CONFIG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, gvisor.RunscEnv+"="+runsc, gvisor.InitEnv+"="+initPath, "BOXRUN_STATE_DIR="+stateDir, "BOXRUN_MAX_CPU=8")
}

// cliProc runs the built CLI as a process.
func cliProc(t *testing.T, env []string, stdin string, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("boxrun %v: %v", args, err)
	}
	return cliResult{code, out.String(), errb.String()}
}

// serverPIDs finds the `boxrun serve` processes of stateDir by their exact
// command line (the auto-started server is detached, so it is not our child).
func serverPIDs(bin, sock string) []int {
	want := strings.Join([]string{bin, "serve", "--socket", sock}, "\x00")
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), want+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// testGvisor drives every CLI command against a gVisor-backed server that the
// first command auto-starts on the state dir's socket.
func testGvisor(t *testing.T, bin string) {
	state := t.TempDir()
	env := gvisorEnv(t, state)
	sock := filepath.Join(state, "boxrun.sock")
	// A stale socket (nobody listening) makes the CLI pick the socket and
	// auto-start a server there.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	img := filepath.Join(t.TempDir(), "busybox-oci")
	cli := func(stdin string, args ...string) cliResult { t.Helper(); return cliProc(t, env, stdin, bin, args...) }
	if r := cli("", "images", "build-busybox", img); r.code != 0 {
		t.Fatalf("build-busybox: %+v", r)
	}
	ref := "oci:" + img

	r := cli("", "run", ref, "echo", "hello from gvisor")
	t.Cleanup(func() {
		if r := cli("", "ls", "-q"); r.code == 0 {
			for _, id := range strings.Fields(r.stdout) {
				cli("", "rm", "-f", id)
			}
		}
		for _, pid := range serverPIDs(bin, sock) {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100; i++ {
				if syscall.Kill(pid, 0) != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	if r.code != 0 || r.stdout != "hello from gvisor\n" {
		t.Fatalf("run with auto-start: %+v\nserver log: %s", r, lastLines(filepath.Join(state, "boxrun.log"), 20))
	}
	for _, w := range []string{"Server not running. Starting boxrun serve in background...", "Server started."} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("auto-start stderr lacks %q: %s", w, r.stderr)
		}
	}
	if pids := serverPIDs(bin, sock); len(pids) != 1 {
		t.Errorf("server processes %v, want 1", pids)
	}

	host := t.TempDir()
	writeFile(t, filepath.Join(host, "in.txt"), "into gvisor\n")
	writeFile(t, filepath.Join(host, "tree", "a", "b.txt"), "nested\n")
	steps := []cliCase{
		{name: "second run reuses server", args: []string{"run", ref, "sh", "-c", "exit 4"}, wantCode: 4},
		{name: "info", args: []string{"info"}, wantStdout: []string{"unix://" + sock, "Max CPU:    8"}},
		{name: "create", args: []string{"create", "--name", "g", "--cpus", "1", "-m", "256", "-e", "GREETING=hi", ref},
			wantStdout: []string{"Name: g", "Status: running"}},
		{name: "exec", args: []string{"exec", "g", "sh", "-c", "echo $GREETING $((6*7)); pwd"}, exactStdout: str("hi 42\n/root\n")},
		{name: "exec exit code", args: []string{"exec", "g", "sh", "-c", "echo bad >&2; exit 5"}, wantCode: 5, wantStderr: []string{"bad"}},
		{name: "exec isolated kernel", args: []string{"exec", "g", "uname", "-r"}, wantStdout: []string{"gvisor"}},
		{name: "exec timeout", args: []string{"exec", "-t", "1", "g", "sleep", "30"}, wantCode: 137},
		{name: "exec interactive", args: []string{"exec", "-i", "g", "sh", "-c", "read x; echo got:$x"}, stdin: "typed\n", wantStdout: []string{"got:typed"}},
		{name: "cp in", args: []string{"cp", filepath.Join(host, "in.txt"), "g:/root/in.txt"}, exactStdout: str("Uploaded to g:/root/in.txt\n")},
		{name: "cp dir in", args: []string{"cp", filepath.Join(host, "tree"), "g:/root/tree"}},
		{name: "see files", args: []string{"exec", "g", "cat", "/root/in.txt", "/root/tree/a/b.txt"}, exactStdout: str("into gvisor\nnested\n")},
		{name: "cp out", args: []string{"cp", "g:/root/in.txt", filepath.Join(host, "back.txt")}},
		{name: "cp dir out", args: []string{"cp", "g:/root/tree", filepath.Join(host, "tree-back")}},
		{name: "stop", args: []string{"stop", "g"}, wantStdout: []string{"Stopped box_"}},
		{name: "ls stopped", args: []string{"ls", "-s", "stopped"}, wantStdout: []string{"g", "stopped"}},
		{name: "start", args: []string{"start", "g"}, wantStdout: []string{"Started box_"}},
		{name: "files survive restart", args: []string{"exec", "g", "cat", "/root/in.txt"}, exactStdout: str("into gvisor\n")},
		{name: "rm running", args: []string{"rm", "g"}, wantCode: 1, wantStderr: []string{"[BOX_ALREADY_RUNNING]"}},
		{name: "inspect", args: []string{"inspect", "g"}, wantStdout: []string{`"name": "g"`, `"status": "running"`, `"GREETING": "hi"`}},
		{name: "inspect execs", args: []string{"inspect", "--execs", "g"}, wantStdout: []string{`"status": "succeeded"`, `"status": "failed"`}},
		{name: "exec detach", args: []string{"exec", "-d", "g", "sh", "-c", "echo detached > /root/d.txt"}, wantStdout: []string{"exec_"}},
		{name: "images pull cached", args: []string{"images", "pull", "--progress", "plain", ref}, wantStdout: []string{"Pulled " + ref}},
		{name: "run keep", args: []string{"run", "--rm=false", "--cpus", "1", "--name", "kept", ref, "echo", "kept"},
			exactStdout: str("kept\n"), wantStderr: []string{"Created box"}},
		{name: "rm kept", args: []string{"rm", "-f", "kept"}, exactStdout: str("Removed kept\n")},
		{name: "version", args: []string{"version"}, exactStdout: str("boxrun 0.3.0 (go)\n")},
	}
	for _, tc := range steps {
		r := cli(tc.stdin, tc.args...)
		if r.code != tc.wantCode {
			t.Errorf("%s: boxrun %v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.name, tc.args, r.code, tc.wantCode, r.stdout, r.stderr)
		}
		for _, w := range tc.wantStdout {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q: %s", tc.name, w, r.stdout)
			}
		}
		for _, w := range tc.wantStderr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q: %s", tc.name, w, r.stderr)
			}
		}
		if tc.exactStdout != nil && r.stdout != *tc.exactStdout {
			t.Errorf("%s: stdout %q, want %q (stderr %s)", tc.name, r.stdout, *tc.exactStdout, r.stderr)
		}
	}
	if got := readFile(t, filepath.Join(host, "back.txt")); got != "into gvisor\n" {
		t.Errorf("cp out: %q", got)
	}
	if got := readFile(t, filepath.Join(host, "tree-back", "a", "b.txt")); got != "nested\n" {
		t.Errorf("cp dir out: %q", got)
	}

	// A terminal in the gVisor box, on a real pty.
	sess := startOnPtyEnv(t, env, bin, "attach", "g")
	sess.typeLine("echo in''-gvisor; stty size")
	sess.waitOutput("in-gvisor")
	sess.waitOutput("24 80")
	sess.typeLine("exit 3")
	if code := sess.wait(); code != 3 {
		t.Errorf("attach exit %d, want 3:\n%s", code, sess.output())
	}

	sh := startOnPtyEnv(t, env, bin, "shell", "--rm", "--name", "sh1", "--cpus", "1", ref)
	sh.waitOutput("Created box sh1")
	sh.typeLine("echo shell''-ok")
	sh.waitOutput("shell-ok")
	sh.typeLine("exit")
	if code := sh.wait(); code != 0 {
		t.Errorf("shell exit %d:\n%s", code, sh.output())
	}
	for _, tc := range []cliCase{
		{name: "shell --rm removed its box", args: []string{"inspect", "sh1"}, wantCode: 1},
		{name: "rm", args: []string{"rm", "-f", "g"}, exactStdout: str("Removed g\n")},
		{name: "ls empty", args: []string{"ls"}, exactStdout: str("No boxes found.\n")},
		{name: "gc", args: []string{"gc"}, exactStdout: str("Removed 0 box(es)\n")},
		{name: "images", args: []string{"images", "ls"}, wantStdout: []string{ref}},
		{name: "images rm", args: []string{"images", "rm", ref}, exactStdout: str("Removed " + ref + "\n")},
		{name: "images prune", args: []string{"images", "prune"}, wantStdout: []string{"image(s)"}},
	} {
		r := cli("", tc.args...)
		if r.code != tc.wantCode || (tc.exactStdout != nil && r.stdout != *tc.exactStdout) {
			t.Errorf("%s: %+v", tc.name, r)
		}
		for _, w := range tc.wantStdout {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q: %s", tc.name, w, r.stdout)
			}
		}
	}
}
