package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// term is a client side of the attach WebSocket.
type term struct {
	t    testing.TB
	conn *websocket.Conn
	out  bytes.Buffer // binary frames so far
	ctrl []map[string]any
}

func (e *env) attach(ctx context.Context, box string, query url.Values) *term {
	e.t.Helper()
	u := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/boxes/" + box + "/attach?" + query.Encode()
	conn, res, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		e.t.Fatalf("dial attach: %v (%v)", err, res)
	}
	conn.SetReadLimit(4 << 20)
	return &term{t: e.t, conn: conn}
}

func (c *term) send(ctx context.Context, s string) {
	c.t.Helper()
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// readUntil reads frames until cond holds for the output, or a control
// frame arrives (returned), or the connection closes.
func (c *term) readUntil(ctx context.Context, cond func(string) bool) (map[string]any, error) {
	for cond == nil || !cond(c.out.String()) {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageBinary {
			c.out.Write(data)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		c.ctrl = append(c.ctrl, m)
		return m, nil
	}
	return nil, nil
}

// finish reads until the exit/error frame and then the close.
func (c *term) finish(ctx context.Context) map[string]any {
	c.t.Helper()
	m, err := c.readUntil(ctx, nil)
	if err != nil {
		c.t.Fatalf("waiting for exit frame: %v (output %q)", err, c.out.String())
	}
	_, _, err = c.conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		c.t.Errorf("after the final frame: %v, want a normal close", err)
	}
	return m
}

func TestAttach_ExitCode(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := e.attach(ctx, box.ID, url.Values{"cmd": {"sh", "-c", "echo hi; exit 5"}})
	m := c.finish(ctx)
	if m["type"] != "exit" || m["code"] != float64(5) || len(m) != 2 {
		t.Errorf("final frame %v", m)
	}
	if !strings.Contains(c.out.String(), "hi") {
		t.Errorf("output %q", c.out.String())
	}
}

func TestAttach_InteractiveShell(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := e.attach(ctx, box.ID, url.Values{"shell": {"/bin/sh"}, "term": {"xterm-test"}, "cols": {"100"}, "rows": {"30"}})
	c.send(ctx, "echo T=$TERM; stty size\n")
	if _, err := c.readUntil(ctx, func(s string) bool { return strings.Contains(s, "T=xterm-test") && strings.Contains(s, "30 100") }); err != nil {
		t.Fatalf("%v; output %q", err, c.out.String())
	}
	// A text frame that is not a resize is ignored, never typed.
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	c.send(ctx, "exit 3\n")
	if m := c.finish(ctx); m["type"] != "exit" || m["code"] != float64(3) {
		t.Errorf("final frame %v", m)
	}
	if strings.Contains(c.out.String(), "hello") {
		t.Errorf("text frame reached the terminal: %q", c.out.String())
	}
}

func TestAttach_Resize(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := e.attach(ctx, box.ID, url.Values{"cmd": {"sh", "-c", "stty size; read x; stty size; read x; stty size"}})
	if _, err := c.readUntil(ctx, func(s string) bool { return strings.Contains(s, "24 80") }); err != nil {
		t.Fatalf("default size: %v; output %q", err, c.out.String())
	}
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":132,"rows":43}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the resize and the newline travel different paths
	c.send(ctx, "\n")
	if _, err := c.readUntil(ctx, func(s string) bool { return strings.Contains(s, "43 132") }); err != nil {
		t.Fatalf("after resize: %v; output %q", err, c.out.String())
	}
	// Missing fields default to 80x24.
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":90}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	c.send(ctx, "\n")
	if _, err := c.readUntil(ctx, func(s string) bool { return strings.Contains(s, "24 90") }); err != nil {
		t.Fatalf("after partial resize: %v; output %q", err, c.out.String())
	}
	if m := c.finish(ctx); m["type"] != "exit" || m["code"] != float64(0) {
		t.Errorf("final frame %v", m)
	}
}

// TestAttach_DisconnectKillsProcess: when the client goes away, the program
// is killed (spec §7.3).
func TestAttach_DisconnectKillsProcess(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := e.attach(ctx, box.ID, url.Values{"cmd": {"sh", "-c", "echo PID=$$; exec sleep 300"}})
	re := regexp.MustCompile(`PID=(\d+)`)
	if _, err := c.readUntil(ctx, func(s string) bool { return re.MatchString(s) }); err != nil {
		t.Fatalf("%v; output %q", err, c.out.String())
	}
	pid, _ := strconv.Atoi(re.FindStringSubmatch(c.out.String())[1])
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("process %d not running: %v", pid, err)
	}
	c.conn.CloseNow() // drop the connection without a close handshake
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after the client disconnected", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAttach_BigOutputNotDropped: a slow reader of a lot of output gets
// every byte (back-pressure, not melody's drop-on-full).
func TestAttach_BigOutputNotDropped(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 4 << 20
	c := e.attach(ctx, box.ID, url.Values{"cmd": {"sh", "-c", "head -c " + strconv.Itoa(n) + " /dev/zero | tr '\\0' a; echo"}})
	time.Sleep(time.Second) // let the server run far ahead of us
	m := c.finish(ctx)
	if m["type"] != "exit" || m["code"] != float64(0) {
		t.Errorf("final frame %v", m)
	}
	if got := strings.Count(c.out.String(), "a"); got != n {
		t.Errorf("received %d of %d bytes", got, n)
	}
}

func TestAttach_Errors(t *testing.T) {
	e := newEnv(t)
	e.createBox(`{"image":"busybox","name":"old"}`)
	if r := e.do("POST", "/v1/boxes/old:stop", ""); r.status != 200 {
		t.Fatal(r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ box, code, msg string }{
		{"nope", "BOX_NOT_FOUND", "Box 'nope' not found"},
		{"old", "BOX_NOT_RUNNING", "Box is not running"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			c := e.attach(ctx, tc.box, nil)
			m := c.finish(ctx)
			want := map[string]any{"type": "error", "code": tc.code, "message": tc.msg}
			if len(m) != 3 || m["type"] != want["type"] || m["code"] != want["code"] || m["message"] != want["message"] {
				t.Errorf("frame %v, want %v", m, want)
			}
		})
	}
	t.Run("ErrBadCols", func(t *testing.T) {
		r := e.do("GET", "/v1/boxes/old/attach?cols=abc", "")
		if r.status != 400 || jsonOf[map[string]any](t, r)["code"] != "VALIDATION_ERROR" {
			t.Errorf("%d %s", r.status, r.body)
		}
		u := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/boxes/old/attach?rows=-1"
		_, res, err := websocket.Dial(ctx, u, nil)
		if err == nil || res == nil || res.StatusCode != 400 {
			t.Errorf("dial with rows=-1: %v %v", err, res)
		}
	})
	t.Run("ErrNotWebSocket", func(t *testing.T) {
		if r := e.do("GET", "/v1/boxes/old/attach", ""); r.status != 400 {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("ErrCrossOrigin", func(t *testing.T) {
		u := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/boxes/old/attach"
		_, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
		if err == nil || res == nil || res.StatusCode != 403 {
			t.Errorf("cross-origin dial: %v %v", err, res)
		}
	})
}

// The {"type":"eof"} text frame (extension) ends the program's input: the
// server delivers end of file on the terminal even mid-line (where one
// Ctrl-D byte would only end the line), and input sent after it is dropped.
func TestAttach_EOFFrame(t *testing.T) {
	e := newEnv(t)
	box := e.createBox(`{"image":"busybox"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := e.attach(ctx, box.ID, url.Values{"cmd": {"sh", "-c", "n=$(wc -c); echo count=$n; echo done"}})
	c.send(ctx, "abc")
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(`{"type":"eof"}`)); err != nil {
		t.Fatal(err)
	}
	c.send(ctx, "dropped")
	m := c.finish(ctx)
	if m["type"] != "exit" || m["code"] != float64(0) {
		t.Errorf("final frame %v (output %q)", m, c.out.String())
	}
	if out := c.out.String(); !strings.Contains(out, "count=3") || !strings.Contains(out, "done") || strings.Contains(out, "dropped") {
		t.Errorf("output %q: want count=3 and done, nothing after the end of input", out)
	}
}
