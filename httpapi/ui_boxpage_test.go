package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/image"
	"github.com/boxrun/boxrun/image/imagetest"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// dashImages is the image side of the dashboard test: a real image store
// over an in-process registry whose blobs come slowly (so a pull shows
// progress), with busybox pulled already and a bigger image to pull.
type dashImages struct {
	store         *image.Store
	busybox, tool string // references in the registry
}

func newDashImages(t *testing.T, ctx context.Context) dashImages {
	t.Helper()
	slow := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				w = &slowWriter{ResponseWriter: w}
			}
			next.ServeHTTP(w, r)
		})
	}
	host := imagetest.Registry(t, imagetest.WithMiddleware(slow))
	bb := imagetest.BusyboxImage(t)
	big, err := mutate.AppendLayers(bb, imagetest.RandomLayer(t, "data.bin", 6<<20, 7))
	if err != nil {
		t.Fatal(err)
	}
	d := dashImages{busybox: imagetest.Push(t, host, "busybox:latest", bb), tool: imagetest.Push(t, host, "tools:1", big)}
	if d.store, err = image.Open(filepath.Join(t.TempDir(), "images")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.Pull(ctx, d.busybox, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// slowWriter sends a blob in 64 KiB pieces 25 ms apart.
type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[k:]
		time.Sleep(25 * time.Millisecond)
	}
	return n, nil
}

// setFile puts the host file path into the file input sel.
func (c *cdp) setFile(ctx context.Context, sel, path string) {
	c.t.Helper()
	raw, err := c.call(ctx, "DOM.getDocument", map[string]any{})
	if err != nil {
		c.t.Fatal(err)
	}
	var doc struct{ Root struct{ NodeID int } }
	json.Unmarshal(raw, &doc)
	if raw, err = c.call(ctx, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": sel}); err != nil {
		c.t.Fatal(err)
	}
	var n struct{ NodeID int }
	json.Unmarshal(raw, &n)
	if _, err := c.call(ctx, "DOM.setFileInputFiles", map[string]any{"nodeId": n.NodeID, "files": []string{path}}); err != nil {
		c.t.Fatal(err)
	}
}

// boxExec runs sh -c script in box through the API and waits for it.
func boxExec(t *testing.T, s *served, box, script string) {
	t.Helper()
	e := &env{t: t, mgr: s.mgr, url: s.url}
	ex := e.startExec(box, "sh", "-c", script)
	if got := e.waitExec(ex.ID); got.ExitCode == nil || *got.ExitCode != 0 {
		t.Fatalf("%s: %+v", script, got)
	}
}

// checkBoxPage drives the box page of box: live charts, exec history with
// replay, the file browser (enter a directory, upload into it, download
// from it), the file-watch feed; at both widths, with screenshots.
func checkBoxPage(t *testing.T, ctx context.Context, s *served, page *cdp, shots, box string) {
	boxExec(t, s, box, "mkdir -p /root/up && echo box-side > /root/up/hello.txt && echo listed-$((40+2))")
	page.run(ctx, `location.hash = "#/"; true`)
	page.waitFor(ctx, "the box link", `!!document.querySelector('#boxes tr.box[data-id="`+box+`"] a.open')`)
	page.run(ctx, `document.querySelector('#boxes tr.box[data-id="`+box+`"] a.open').click(); true`)
	page.waitFor(ctx, "the box page", `!document.getElementById("view-box").hidden && document.getElementById("view-list").hidden &&
		document.getElementById("bp-title").innerText === "dash-a"`)

	// Live charts: samples keep coming and the lines move.
	page.waitFor(ctx, "the charts", `document.querySelectorAll("#bp-cpu-chart polyline, #bp-mem-chart polyline").length === 2`)
	before := page.run(ctx, `document.querySelector("#bp-mem-chart polyline").getAttribute("points")`)
	page.waitFor(ctx, "the charts to move", `document.querySelector("#bp-mem-chart polyline").getAttribute("points") !== `+jsString(before)+` &&
		+document.getElementById("bp-samples").innerText >= 3`)

	// Exec history: replay the one run above.
	page.waitFor(ctx, "the box's exec history", `[...document.querySelectorAll("#bp-execs div.replay")].some((d) => d.innerText.includes("listed-"))`)
	page.run(ctx, `[...document.querySelectorAll("#bp-execs div.replay")].find((d) => d.innerText.includes("listed-")).click(); true`)
	page.waitFor(ctx, "the replay on the box page", `(() => { const t = document.getElementById("bp-output").innerText; return t.includes("listed-42") && t.includes("[exit 0]"); })()`)

	// Files: the workdir, then into up/.
	page.waitFor(ctx, "the workdir listing", `document.getElementById("bp-path").value === "/root" && !!document.querySelector('#bp-files button[data-dir="up"]')`)
	page.run(ctx, `document.querySelector('#bp-files button[data-dir="up"]').click(); true`)
	page.waitFor(ctx, "the up/ listing", `document.getElementById("bp-path").value === "/root/up" && !!document.querySelector('#bp-files tr[data-name="hello.txt"]')`)

	// Watch it, then upload into it and change it from inside the box.
	page.run(ctx, `document.getElementById("bp-watch-btn").click(); true`)
	page.waitFor(ctx, "the watch", `document.getElementById("bp-watch-state").innerText === "watching /root/up"`)
	src := filepath.Join(t.TempDir(), "upload.txt")
	if err := os.WriteFile(src, []byte("uploaded-from-chromium\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	page.setFile(ctx, "#bp-upload-file", src)
	page.run(ctx, `document.getElementById("bp-upload-btn").click(); true`)
	page.waitFor(ctx, "the uploaded file listed", `!!document.querySelector('#bp-files tr[data-name="upload.txt"]')`)
	res, err := http.Post(s.url+"/v1/boxes/"+box+"/files/download", "application/json", strings.NewReader(`{"path":"/root/up/upload.txt"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(res.Body)
	res.Body.Close()
	if got.String() != "uploaded-from-chromium\n" {
		t.Errorf("the uploaded file in the box holds %q", got.String())
	}
	boxExec(t, s, box, "echo x > /root/up/from-box.txt && mv /root/up/from-box.txt /root/up/moved.txt")
	page.waitFor(ctx, "the watch feed", `(() => { const t = document.getElementById("bp-watch-feed").innerText;
		return t.includes("created /root/up/upload.txt") && t.includes("created /root/up/from-box.txt") &&
			t.includes("renamed /root/up/from-box.txt → /root/up/moved.txt"); })()`)
	page.waitFor(ctx, "the listing to follow the watch", `!!document.querySelector('#bp-files tr[data-name="moved.txt"]')`)

	// Download: Chromium saves the file into dl.
	dl := t.TempDir()
	if _, err := page.call(ctx, "Browser.setDownloadBehavior", map[string]any{"behavior": "allow", "downloadPath": dl}); err != nil {
		if _, err := page.call(ctx, "Page.setDownloadBehavior", map[string]any{"behavior": "allow", "downloadPath": dl}); err != nil {
			t.Fatal(err)
		}
	}
	page.run(ctx, `document.querySelector('#bp-files button[data-dl="hello.txt"]').click(); true`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dl, "hello.txt"))
		if err == nil && string(b) == "box-side\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("download: %q %v", b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	page.shot(ctx, shots, "9-box-page")
	page.viewport(ctx, 420, 860, true)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	checkWidth(t, ctx, page, "box page", "#bp-upload-btn", "#bp-watch-btn", `#bp-files button[data-dl="hello.txt"]`, "#bp-go")
	page.shot(ctx, shots, "9-box-page-phone")
	page.viewport(ctx, 1280, 900, false)
	page.run(ctx, `document.getElementById("bp-watch-btn").click(); true`) // stop watching
}

// checkImages drives the image cache view: the cached image is listed, a
// pull shows per-layer progress while it runs, and the pulled image joins
// the list; at both widths, with screenshots.
func checkImages(t *testing.T, ctx context.Context, page *cdp, shots string, imgs dashImages) {
	page.run(ctx, `document.getElementById("nav-images").click(); true`)
	page.waitFor(ctx, "the image cache", `!document.getElementById("view-images").hidden && document.getElementById("images").innerText.includes(`+jsString(imgs.busybox)+`)`)
	page.run(ctx, `window.partial = false; new MutationObserver(() => { const m = document.getElementById("pull-state").innerText.match(/pulling… (\d+)%/);
		if (m && +m[1] > 0 && +m[1] < 100 && document.querySelector("#pull-progress .meter i")) window.partial = true; })
		.observe(document.getElementById("view-images"), {subtree: true, childList: true, characterData: true}); true`)
	page.run(ctx, `document.getElementById("pull-ref").value = `+jsString(imgs.tool)+`; document.getElementById("pull-btn").click(); true`)
	page.waitFor(ctx, "progress", `window.partial === true`)
	page.shot(ctx, shots, "10-images-pulling")
	page.waitFor(ctx, "the pull to finish", `document.getElementById("pull-state").innerText.startsWith("pulled") && document.getElementById("images").innerText.includes(`+jsString(imgs.tool)+`)`)
	page.shot(ctx, shots, "10-images")
	page.viewport(ctx, 420, 860, true)
	page.run(ctx, `window.dispatchEvent(new Event("resize")); true`)
	checkWidth(t, ctx, page, "images", "#pull-btn", "#pull-ref", "#images button[data-rmi]")
	page.shot(ctx, shots, "10-images-phone")
	page.viewport(ctx, 1280, 900, false)
	page.run(ctx, `location.hash = "#/"; true`)
}

// checkWidth asserts that the view fits 420 px and that sels are on screen.
func checkWidth(t *testing.T, ctx context.Context, page *cdp, view string, sels ...string) {
	t.Helper()
	if w := page.run(ctx, `document.documentElement.scrollWidth`); w.(float64) > 420 {
		wide := page.run(ctx, `JSON.stringify([...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > 421).slice(0, 10).map((e) => e.tagName + "#" + e.id + "." + e.className))`)
		t.Errorf("%s at 420 px: the page is %v px wide; too wide: %v", view, w, wide)
	}
	for _, sel := range sels {
		r := page.run(ctx, `(() => { const e = document.querySelector(`+jsString(sel)+`); if (!e) return "missing"; const r = e.getBoundingClientRect();
			return r.width > 0 && r.left >= 0 && r.right <= 420 ? "ok" : "at " + r.left + ".." + r.right; })()`)
		if r != "ok" {
			t.Errorf("%s at 420 px: %s is %v", view, sel, r)
		}
	}
}

// jsString quotes v as a JavaScript string literal.
func jsString(v any) string {
	b, _ := json.Marshal(fmt.Sprint(v))
	return string(b)
}
