package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/coder/websocket"
)

// cdp is a minimal Chrome DevTools Protocol client for one page.
type cdp struct {
	t    *testing.T
	conn *websocket.Conn
	id   int
	errs []string // console errors and uncaught exceptions seen so far
}

// noteEvent records console errors and exceptions from a CDP event.
func (c *cdp) noteEvent(data []byte) {
	var ev struct {
		Method string `json:"method"`
		Params struct {
			Type  string            `json:"type"`
			Args  []json.RawMessage `json:"args"`
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
			ExceptionDetails json.RawMessage `json:"exceptionDetails"`
		} `json:"params"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	switch {
	case ev.Method == "Runtime.exceptionThrown":
		c.errs = append(c.errs, "exception: "+string(ev.Params.ExceptionDetails))
	case ev.Method == "Runtime.consoleAPICalled" && ev.Params.Type == "error":
		c.errs = append(c.errs, fmt.Sprintf("console.error: %s", ev.Params.Args))
	case ev.Method == "Log.entryAdded" && ev.Params.Entry.Level == "error":
		c.errs = append(c.errs, "log: "+ev.Params.Entry.Text+" "+ev.Params.Entry.URL)
	}
}

func (c *cdp) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	c.id++
	id := c.id
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return nil, err
	}
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		var res struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &res) != nil || res.ID != id {
			c.noteEvent(data)
			continue // an event
		}
		if res.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, res.Error.Message)
		}
		return res.Result, nil
	}
}

// eval evaluates JavaScript in the page and returns its JSON value.
func (c *cdp) eval(ctx context.Context, expr string) (any, error) {
	raw, err := c.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return nil, err
	}
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	if res.ExceptionDetails != nil {
		return nil, fmt.Errorf("js exception: %v", res.ExceptionDetails)
	}
	return res.Result.Value, nil
}

// waitFor polls a JavaScript condition until it is true.
func (c *cdp) waitFor(ctx context.Context, what, expr string) {
	c.t.Helper()
	for {
		v, err := c.eval(ctx, expr) // errors (page still loading) are retried
		if err == nil && v == true {
			return
		}
		select {
		case <-ctx.Done():
			bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
			body, _ := c.eval(bctx, "document.body.innerText")
			bcancel()
			c.t.Fatalf("timed out waiting for %s (last error %v); page text:\n%v", what, err, body)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startChromium launches headless Debian chromium on url and connects to the page.
func startChromium(t *testing.T, ctx context.Context, url string) *cdp {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "chromium not installed (apt-get install -y chromium)")
	}
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir="+profile, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		"--window-size=1280,1000", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // chromium and its helpers (its own group)
		cmd.Wait()
	})
	var port string
	for port == "" {
		data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err == nil && strings.Contains(string(data), "\n") {
			port = strings.SplitN(string(data), "\n", 2)[0]
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("chromium did not open its DevTools port")
		case <-time.After(50 * time.Millisecond):
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wsURL string
	for wsURL == "" {
		res, err := client.Get("http://127.0.0.1:" + port + "/json/list")
		if err == nil {
			var targets []struct{ Type, URL, WebSocketDebuggerURL string }
			json.NewDecoder(res.Body).Decode(&targets)
			res.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
					wsURL = tg.WebSocketDebuggerURL
				}
			}
		}
		if wsURL == "" {
			select {
			case <-ctx.Done():
				t.Fatal("no page target")
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &cdp{t: t, conn: conn}
}

// TestUI_Browser drives the embedded UI in a real headless Chromium against
// a real server on loopback: it creates a box, sees it listed, runs an exec
// with streamed output and types into the attach terminal.
func TestUI_Browser(t *testing.T) {
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, ln)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // generous: CI machines are loaded
	defer cancel()
	page := startChromium(t, ctx, s.url+"/ui")

	page.waitFor(ctx, "the empty box list", `document.getElementById("boxes").innerText.includes("No boxes yet.")`)
	page.waitFor(ctx, "the resource bar", `document.getElementById("stat-cpu").innerText === "0 / 64"`)
	if _, err := page.eval(ctx, `
		document.getElementById("create-image").value = "busybox";
		document.getElementById("create-name").value = "ui-box";
		document.getElementById("create-btn").click(); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "the new box in the table", `(() => {
		const row = [...document.querySelectorAll("#boxes tr.box")].find(r => r.innerText.includes("ui-box"));
		return !!row && row.querySelector(".badge.running") !== null; })()`)
	if code, body := s.get(t, "/v1/boxes/ui-box"); code != 200 || !strings.Contains(body, `"image":"busybox"`) {
		t.Fatalf("box not created through the UI: %d %s", code, body)
	}
	page.waitFor(ctx, "the resource bar update", `document.getElementById("stat-cpu").innerText === "2 / 64"`)

	// Run a command and stream its output over SSE.
	if _, err := page.eval(ctx, `
		document.getElementById("exec-cmd").value = "echo from-ui-$((6*7)); exit 2";
		document.getElementById("exec-btn").click(); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "streamed exec output", `(() => { const t = document.getElementById("output").innerText;
		return t.includes("from-ui-42") && t.includes("[exit 2]"); })()`)

	// Open the terminal and type a command.
	if _, err := page.eval(ctx, `document.getElementById("term-btn").click(); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "the terminal to attach", `document.getElementById("term-status").innerText === "attached"`)
	if _, err := page.eval(ctx, `term.input("echo term-$((7*6))\r", true); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "terminal output", `(document.querySelector("#terminal .xterm-rows") || {innerText: ""}).innerText.includes("term-42")`)

	// Stop and remove through the buttons.
	if _, err := page.eval(ctx, `document.querySelector('#boxes button[data-act="stop"]').click(); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "the box to stop", `document.querySelector("#boxes .badge.stopped") !== null`)
	shot, err := page.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err == nil {
		var res struct{ Data string }
		json.Unmarshal(shot, &res)
		png, _ := base64.StdEncoding.DecodeString(res.Data)
		path := filepath.Join(os.TempDir(), "boxrun-ui-"+strconv.Itoa(os.Getpid())+".png")
		if os.WriteFile(path, png, 0o644) == nil {
			t.Logf("screenshot: %s", path)
		}
	}
	if _, err := page.eval(ctx, `document.querySelector('#boxes button[data-act="rm"]').click(); true`); err != nil {
		t.Fatal(err)
	}
	page.waitFor(ctx, "the box to go", `document.getElementById("boxes").innerText.includes("No boxes yet.")`)
}

func TestUI_Served(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/ui", "")
	if r.status != 200 || r.header.Get("Content-Type") != "text/html; charset=utf-8" || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/ui: %d %v", r.status, r.header)
	}
	page := string(r.body)
	for _, abs := range []string{`src="/`, `href="/`, `fetch("/`, `"/v1`, `'/v1`, "http://", "https://"} {
		if strings.Contains(page, abs) {
			t.Errorf("page uses an absolute URL (%s)", abs)
		}
	}
	for _, want := range []string{`src="ui/vendor/xterm.js"`, `href="ui/vendor/xterm.css"`, "setInterval(refresh, 3000)", `"v1/"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for path, ctype := range map[string]string{
		"/ui/vendor/xterm.js":      "text/javascript; charset=utf-8",
		"/ui/vendor/xterm.css":     "text/css; charset=utf-8",
		"/ui/vendor/LICENSE.xterm": "text/plain; charset=utf-8",
	} {
		if r := e.do("GET", path, ""); r.status != 200 || r.header.Get("Content-Type") != ctype || len(r.body) == 0 {
			t.Errorf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
	}
	if r := e.do("GET", "/ui/", ""); r.status != 301 || r.header.Get("Location") != "../ui" {
		t.Errorf("/ui/: %d %q", r.status, r.header.Get("Location"))
	}
	if r := e.do("GET", "/", ""); r.status != 303 || r.header.Get("Location") != "/ui" {
		t.Errorf("/: %d %q", r.status, r.header.Get("Location"))
	}
	for _, path := range []string{"/ui/nope.js", "/ui/../v1/info", "/ui/vendor/../../server.go"} {
		if r := e.do("GET", path, ""); r.status != 404 {
			t.Errorf("%s: %d", path, r.status)
		}
	}
}
