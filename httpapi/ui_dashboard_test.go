package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/httpapi"
)

// shot saves a screenshot of the page as name.png in the test's artifact
// directory.
func (c *cdp) shot(ctx context.Context, dir, name string) {
	c.t.Helper()
	raw, err := c.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	var res struct{ Data string }
	json.Unmarshal(raw, &res)
	png, _ := base64.StdEncoding.DecodeString(res.Data)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// run evaluates expr, failing the test on an error.
func (c *cdp) run(ctx context.Context, expr string) any {
	c.t.Helper()
	v, err := c.eval(ctx, expr)
	if err != nil {
		c.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// viewport sets the page's size, as a window resize would.
func (c *cdp) viewport(ctx context.Context, w, h int, mobile bool) {
	c.t.Helper()
	if _, err := c.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile}); err != nil {
		c.t.Fatal(err)
	}
}

// TestUI_Dashboard drives the dashboard in headless Chromium against a
// real server: sparklines fill from the stats stream, an exec from the
// history replays, a running exec is canceled (and a new Run cancels the
// one shown), the terminal follows the window size (stty size in the box
// fits its panel; a window resize sends the new size), Detach says so, rm of a running box asks first, error toasts
// stay, and rows open from the keyboard. Screenshots of each view go to the test's artifact directory
// (go test -artifacts); the page logs no console error.
func TestUI_Dashboard(t *testing.T) {
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, ln)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shots := t.ArtifactDir()
	mk := func(name string) boxapi.Box {
		res, err := http.Post(s.url+"/v1/boxes", "application/json", strings.NewReader(`{"image":"busybox","name":"`+name+`"}`))
		if err != nil || res.StatusCode != 201 {
			t.Fatalf("create %s: %v %v", name, res, err)
		}
		defer res.Body.Close()
		var b boxapi.Box
		json.NewDecoder(res.Body).Decode(&b)
		return b
	}
	a := mk("dash-a")
	page := startChromium(t, ctx, s.url+"/ui")
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if _, err := page.call(ctx, m, map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	page.viewport(ctx, 1280, 900, false)
	page.call(ctx, "Page.reload", map[string]any{})
	page.waitFor(ctx, "the box list", `!!document.querySelector('#boxes tr.box[data-id="`+a.ID+`"] .badge.running')`)
	page.run(ctx, `window.confirm = () => window.confirmAnswer; window.confirmAnswer = false; true`)

	// Sparklines: the stats stream draws CPU and memory lines per box.
	page.waitFor(ctx, "sparklines", `document.querySelectorAll("#spark-`+a.ID+` svg polyline").length === 2`)
	page.shot(ctx, shots, "1-list")

	// The default image is one the server can use.
	if v := page.run(ctx, `document.getElementById("create-image").value`); v == "" || v == "ubuntu:24.04" {
		t.Errorf("default image %q", v)
	}

	// Run, open the history from the keyboard, replay.
	page.run(ctx, `document.getElementById("exec-cmd").value = "echo replay-$((20+3))"; document.getElementById("exec-btn").click(); true`)
	page.waitFor(ctx, "exec output", `document.getElementById("output").innerText.includes("replay-23")`)
	page.run(ctx, `(() => { const tr = document.querySelector('#boxes tr.box[data-id="`+a.ID+`"]'); tr.focus();
		tr.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true})); return true; })()`)
	page.waitFor(ctx, "the exec history", `!!document.querySelector("#execs-`+a.ID+` div.replay")`)
	page.run(ctx, `document.getElementById("output").textContent = ""; document.querySelector("#execs-`+a.ID+` div.replay").click(); true`)
	page.waitFor(ctx, "the replayed output", `(() => { const t = document.getElementById("output").innerText; return t.includes("replay-23") && t.includes("[exit 0]"); })()`)
	// The history does not flicker back to "Loading…" on refresh.
	page.run(ctx, `window.flicker = false; new MutationObserver(() => { const e = document.getElementById("execs-`+a.ID+`");
		if (e && e.innerText.includes("Loading")) window.flicker = true; }).observe(document.getElementById("boxes"), {subtree: true, childList: true, characterData: true}); true`)
	time.Sleep(7 * time.Second) // two refreshes
	if page.run(ctx, `window.flicker`) != false {
		t.Errorf("the exec history flickered to Loading… on refresh")
	}
	page.shot(ctx, shots, "2-history-replay")

	// Cancel a running exec; a new Run cancels the one shown.
	page.run(ctx, `document.getElementById("exec-cmd").value = "echo started; sleep 60"; document.getElementById("exec-btn").click(); true`)
	page.waitFor(ctx, "the running indicator", `document.getElementById("exec-state").innerText.startsWith("running") && getComputedStyle(document.getElementById("exec-cancel")).display !== "none"`)
	page.shot(ctx, shots, "3-running")
	page.run(ctx, `document.getElementById("exec-cancel").click(); true`)
	page.waitFor(ctx, "the canceled exec's exit", `document.getElementById("output").innerText.includes("[exit") && document.getElementById("exec-state").innerText === ""`)
	page.run(ctx, `document.getElementById("exec-cmd").value = "sleep 60"; document.getElementById("exec-btn").click(); true`)
	page.waitFor(ctx, "the second run", `document.getElementById("exec-state").innerText.startsWith("running")`)
	page.run(ctx, `document.getElementById("exec-cmd").value = "echo third"; document.getElementById("exec-btn").click(); true`)
	page.waitFor(ctx, "the third run", `document.getElementById("output").innerText.includes("third")`)
	res, err := http.Get(s.url + "/v1/boxes/" + a.ID + "/execs")
	if err != nil {
		t.Fatal(err)
	}
	var execs []boxapi.Exec
	json.NewDecoder(res.Body).Decode(&execs)
	res.Body.Close()
	for _, e := range execs {
		if e.Status == boxapi.ExecRunning {
			t.Errorf("exec %v still running after cancel / a new Run", e.Cmd)
		}
	}

	// The terminal follows the window: stty size changes with it.
	page.run(ctx, `document.getElementById("term-btn").click(); true`)
	page.waitFor(ctx, "the terminal to attach", `document.getElementById("term-status").innerText === "attached"`)
	stty := func(mark string) string {
		page.run(ctx, `term.input("echo `+mark+` $(stty size)\r", true); true`)
		var got string
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		page.waitFor(wctx, "stty size "+mark, `(() => { const m = (document.querySelector("#terminal .xterm-rows") || {innerText: ""}).innerText.match(/`+mark+` (\d+ \d+)/);
			window.sttyGot = m && m[1]; return !!m; })()`)
		got, _ = page.run(ctx, `window.sttyGot`).(string)
		return got
	}
	wide := stty("wide")
	if wide == "" || wide == "28 100" {
		t.Errorf("terminal size %q: not fitted to its panel", wide)
	}
	page.shot(ctx, shots, "4-terminal-wide")
	// A live resize is sent to the server (xterm's onResize); that stty
	// follows it inside a running session is not asserted here (see the
	// report: with the fake driver the session stopped echoing after it).
	page.run(ctx, `window.sentResize = false; const _send = WebSocket.prototype.send;
		WebSocket.prototype.send = function (d) { if (typeof d === "string" && d.includes('"resize"')) window.sentResize = true; return _send.call(this, d); }; true`)
	page.viewport(ctx, 800, 700, false)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	page.waitFor(ctx, "a resize message", `window.sentResize === true`)
	page.shot(ctx, shots, "5-terminal-narrow")
	page.run(ctx, `document.getElementById("term-close").click(); true`)
	page.waitFor(ctx, "the detached status", `document.getElementById("term-status").innerText === "detached"`)

	// Errors stay until dismissed.
	page.run(ctx, `document.getElementById("create-volumes").value = "not-a-volume"; document.getElementById("create-btn").click(); true`)
	page.waitFor(ctx, "an error toast", `document.getElementById("toast").classList.contains("show") && document.getElementById("toast").classList.contains("err")`)
	time.Sleep(4 * time.Second)
	if page.run(ctx, `document.getElementById("toast").classList.contains("show")`) != true {
		t.Errorf("the error toast went away by itself")
	}
	page.shot(ctx, shots, "6-error-toast")
	page.run(ctx, `document.getElementById("toast").click(); document.getElementById("create-volumes").value = ""; true`)

	// Not yet asserted: at 420 px wide the page still scrolls sideways
	// (see the report); a screenshot shows it.
	page.viewport(ctx, 420, 860, true)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	page.shot(ctx, shots, "7-phone")
	page.viewport(ctx, 1280, 900, false)

	// rm of a running box asks first: "no" keeps it, "yes" removes it.
	page.run(ctx, `document.querySelector('#boxes button[data-act="rm"][data-id="`+a.ID+`"]').click(); true`)
	time.Sleep(time.Second)
	if code, _ := s.get(t, "/v1/boxes/"+a.ID); code != 200 {
		t.Fatalf("rm without confirmation removed the box (%d)", code)
	}
	page.run(ctx, `window.confirmAnswer = true; document.querySelector('#boxes button[data-act="rm"][data-id="`+a.ID+`"]').click(); true`)
	page.waitFor(ctx, "the box to go", `!document.querySelector('#boxes tr.box[data-id="`+a.ID+`"]')`)
	page.shot(ctx, shots, "8-removed")
	page.waitFor(ctx, "the event feed", `document.getElementById("events").innerText.includes("box.removed")`)

	var errs []string
	for _, e := range page.errs {
		// This server has no image store: /v1/images answers 400 and the
		// page falls back to "busybox"; the browser logs the status.
		if !strings.Contains(e, "/v1/images") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("screenshots in %s", shots)
}
