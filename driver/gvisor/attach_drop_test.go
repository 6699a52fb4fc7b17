package gvisor_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/gorilla/websocket"
)

// TestHostile_AttachDropped: an attach session's shell starts background
// children (`sleep N &`), then the client goes away without a WebSocket
// close: its TCP connection closed (FIN), reset (RST), or the boxrun CLI
// holding it SIGKILLed. Each time the shell and all its children are gone
// from the box (checked inside the box with ps), and the box keeps running.
func TestHostile_AttachDropped(t *testing.T) {
	d, _ := newDriver(t)
	m := newManager(t, d)
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); httpapi.New(m).Serve(sctx, ln) }()
	t.Cleanup(func() { stop(); <-served })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), box.ID, true) })
	url := fmt.Sprintf("ws://127.0.0.1:%d/v1/boxes/%s/attach?shell=/bin/sh", port, box.ID)

	// dial opens a session through a raw TCP connection the test controls.
	dial := func(t *testing.T) (*websocket.Conn, *net.TCPConn) {
		var tcp *net.TCPConn
		dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				tcp = c.(*net.TCPConn)
			}
			return c, err
		}}
		ws, _, err := dialer.DialContext(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ws, tcp
	}
	// start makes the shell start two background sleeps and waits until
	// it says so.
	start := func(t *testing.T, ws *websocket.Conn, n int) {
		cmd := fmt.Sprintf("sleep %d & sleep %d & echo started-%d\n", n, n+1, n)
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		var seen strings.Builder
		ws.SetReadDeadline(time.Now().Add(time.Minute))
		for !strings.Contains(seen.String(), fmt.Sprintf("started-%d\r\n", n)) {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("reading the session: %v (so far %q)", err, seen.String())
			}
			seen.Write(b)
		}
		assertRunning(t, m, box.ID, n)
	}

	t.Run("FIN", func(t *testing.T) {
		ws, tcp := dial(t)
		defer tcp.Close()
		start(t, ws, 1000)
		tcp.Close()
		assertSessionGone(t, m, box.ID, 1000)
	})
	t.Run("RST", func(t *testing.T) {
		ws, tcp := dial(t)
		defer tcp.Close()
		start(t, ws, 1010)
		tcp.SetLinger(0) // close sends a reset
		tcp.Close()
		assertSessionGone(t, m, box.ID, 1010)
	})
	t.Run("CLIKilled", func(t *testing.T) {
		cli := exec.Command(os.Getenv(gvisor.InitEnv), "attach", "--shell", "/bin/sh", box.ID)
		if cli.Path == "" || filepath.Base(cli.Path) != gvisor.InitName {
			testenv.Skip(t, "no boxrun binary in $"+gvisor.InitEnv)
		}
		cli.Env = append(os.Environ(), "BOXRUN_HOST=127.0.0.1", fmt.Sprintf("BOXRUN_PORT=%d", port), "HOME="+t.TempDir())
		stdin, _ := cli.StdinPipe()
		stdout, _ := cli.StdoutPipe()
		cli.Stderr = os.Stderr
		if err := cli.Start(); err != nil {
			t.Fatal(err)
		}
		defer cli.Wait()
		io.WriteString(stdin, "sleep 1020 & sleep 1021 & echo started-1020\n")
		got := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "started-1020") {
					got <- true
					io.Copy(io.Discard, stdout)
					return
				}
			}
			got <- false
		}()
		select {
		case ok := <-got:
			if !ok {
				cli.Process.Kill()
				t.Fatal("the CLI's session ended before the shell answered")
			}
		case <-time.After(time.Minute):
			cli.Process.Kill()
			t.Fatal("no answer through the CLI within a minute")
		}
		assertRunning(t, m, box.ID, 1020)
		cli.Process.Kill()
		assertSessionGone(t, m, box.ID, 1020)
	})
	// The box itself is untouched.
	if b, err := m.Get(ctx, box.ID); err != nil || b.Status != boxapi.StatusRunning {
		t.Errorf("box after the dropped sessions: %+v %v", b, err)
	}
}

// assertSessionGone waits (generously, the machine is loaded) until no
// `sleep n`, `sleep n+1` or attach shell (/bin/sh) runs in the box, and fails if they stay.
func assertSessionGone(t *testing.T, m *boxrun.Manager, box string, n int) {
	t.Helper()
	dropped := time.Now()
	var ps string
	for deadline := time.Now().Add(30 * time.Second); ; {
		var out strings.Builder
		if _, err := m.Exec(context.Background(), box, boxapi.ExecRequest{Cmd: []string{"ps", "-o", "pid,args"}}, &out, nil); err != nil {
			t.Fatal(err)
		}
		ps = out.String()
		if !strings.Contains(ps, fmt.Sprintf("sleep %d", n)) && !strings.Contains(ps, fmt.Sprintf("sleep %d", n+1)) && !strings.Contains(ps, "/bin/sh\n") {
			t.Logf("session's processes gone %v after the drop", time.Since(dropped).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the dropped session still run in the box 30 s later:\n%s", ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertRunning waits until `sleep n`, `sleep n+1` and the shell run in the
// box (so that assertSessionGone proves something): the shell may answer
// before its background children have exec'd.
func assertRunning(t *testing.T, m *boxrun.Manager, box string, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var out strings.Builder
		if _, err := m.Exec(context.Background(), box, boxapi.ExecRequest{Cmd: []string{"ps", "-o", "pid,args"}}, &out, nil); err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, want := range []string{fmt.Sprintf("sleep %d", n), fmt.Sprintf("sleep %d", n+1), "/bin/sh\n"} {
			if !strings.Contains(out.String(), want) {
				missing = want
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not running in the box while the session is up:\n%s", missing, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
