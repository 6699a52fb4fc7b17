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

// checkPhone asserts that the page is usable 420 px wide: the document is
// no wider than the window, and the box's row with its actions, the Run
// button and the terminal's Attach button lie within it.
func checkPhone(t *testing.T, ctx context.Context, page *cdp, box string) {
	t.Helper()
	if w := page.run(ctx, `document.documentElement.scrollWidth`); w.(float64) > 420 {
		wide := page.run(ctx, `JSON.stringify([...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > 421).slice(0, 10).map((e) => e.tagName + "#" + e.id + "." + e.className))`)
		t.Errorf("at 420 px the page is %v px wide; too wide: %v", w, wide)
	}
	for _, sel := range []string{`#boxes tr.box[data-id="` + box + `"]`, `#boxes button[data-act="rm"][data-id="` + box + `"]`, "#exec-btn", "#exec-cmd", "#term-btn", "#create-btn"} {
		r := page.run(ctx, `(() => { const e = document.querySelector('`+sel+`'); if (!e) return "missing"; const r = e.getBoundingClientRect();
			return r.width > 0 && r.left >= 0 && r.right <= 420 ? "ok" : "at " + r.left + ".." + r.right; })()`)
		if r != "ok" {
			t.Errorf("at 420 px %s is %v", sel, r)
		}
	}
}

// TestUI_Dashboard drives the dashboard in headless Chromium against a
// real server over the gVisor driver: sparklines fill from the stats stream, an exec from the
// history replays, a running exec is canceled (and a new Run cancels the
// one shown), the terminal follows the window size (stty size in the box
// fits its panel and follows a live resize), the page fits 420 px, the
// box page (live charts, exec replay, file browser with upload, download
// and the watch feed) and the image cache (pull with progress) work at
// both widths, Detach says so, rm of a running box asks first, error toasts
// stay, and rows open from the keyboard. Screenshots of each view go to the test's artifact directory
// (go test -artifacts); the page logs no console error.
func TestUI_Dashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	imgs := newDashImages(t, ctx)
	s := newGVisorEnvWith(t, imgs.store)
	shots := t.ArtifactDir()
	mk := func(name string) boxapi.Box {
		res, err := http.Post(s.url+"/v1/boxes", "application/json", strings.NewReader(`{"image":"`+imgs.busybox+`","name":"`+name+`"}`))
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
	// The third exec ends by itself: wait for its exit (its output can show
	// before the exit is recorded), then nothing may be left running.
	page.waitFor(ctx, "the third run", `(() => { const t = document.getElementById("output").innerText; return t.includes("third") && t.includes("[exit"); })()`)
	// A killed exec's record is final once its process is gone: allow that
	// a moment, but nothing may stay running.
	var running []boxapi.Exec
	for deadline := time.Now().Add(10 * time.Second); ; {
		res, err := http.Get(s.url + "/v1/boxes/" + a.ID + "/execs")
		if err != nil {
			t.Fatal(err)
		}
		var execs []boxapi.Exec
		err = json.NewDecoder(res.Body).Decode(&execs)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		running = running[:0]
		for _, e := range execs {
			if e.Status == boxapi.ExecRunning {
				running = append(running, e)
			}
		}
		if len(running) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, e := range running {
		t.Errorf("exec %v still running after cancel / a new Run", e.Cmd)
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
	// A live resize reaches the running shell: stty size follows the
	// window, and the session keeps echoing.
	page.viewport(ctx, 800, 700, false)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	narrow := stty("narrow")
	if want := page.run(ctx, `term.rows + " " + term.cols`); narrow != want || narrow == wide {
		t.Errorf("after a resize stty size is %q; the terminal is %v (before %q)", narrow, want, wide)
	}
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

	// At 420 px wide the page fits the phone: nothing scrolls sideways,
	// the table's actions, Run and the terminal are on screen, and a
	// resize to the phone's width reaches the shell.
	page.run(ctx, `document.getElementById("term-btn").click(); true`)
	page.waitFor(ctx, "the terminal to attach again", `document.getElementById("term-status").innerText === "attached"`)
	page.viewport(ctx, 420, 860, true)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	phone := stty("phone")
	if want := page.run(ctx, `term.rows + " " + term.cols`); phone != want {
		t.Errorf("at 420 px stty size is %q; the terminal is %v", phone, want)
	}
	page.shot(ctx, shots, "7-phone-terminal")
	page.run(ctx, `document.getElementById("term-close").click(); window.scrollTo(0, 0); true`)
	checkPhone(t, ctx, page, a.ID)
	page.shot(ctx, shots, "7-phone")
	page.viewport(ctx, 1280, 900, false)

	// The box page and the image cache, at both widths.
	checkBoxPage(t, ctx, s, page, shots, a.ID)
	checkImages(t, ctx, page, shots, imgs)

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

	if len(page.errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(page.errs, "\n"))
	}
	t.Logf("screenshots in %s", shots)
}
