package httpapi_test

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/driver/gvisor/gvisortest"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// newGVisorEnv serves a Manager over the real gVisor driver, or skips the
// test when runsc (or root) is unavailable.
func newGVisorEnv(t *testing.T) *served {
	t.Helper()
	return newGVisorEnvWith(t, nil)
}

// newGVisorEnvWith is newGVisorEnv with an image store of the test's
// (nil: the busybox rootfs for every reference) and Manager options.
func newGVisorEnvWith(t *testing.T, store sandbox.ImageStore, opts ...boxrun.Option) *served {
	t.Helper()
	mgr := gvisortest.Manager(t, store, opts...)
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveManager(t, mgr, ln)
}

// TestGVisor runs the API against a Manager with the real gVisor driver.
func TestGVisor(t *testing.T) {
	s := newGVisorEnv(t)
	e := &env{t: t, mgr: s.mgr, url: s.url}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	box := e.createBox(`{"image":"busybox","name":"gv"}`)
	golden(t, "gvisor_box.json", e.do("GET", "/v1/boxes/gv", "").body)

	t.Run("ExecStream", func(t *testing.T) {
		ex := e.startExec(box.ID, "sh", "-c", "echo hello from $(uname -s); echo oops >&2; exit 3")
		st, err := e.readSSE(ctx, "/v1/boxes/"+box.ID+"/exec/"+ex.ID+"/events")
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, exit := checkExecStream(t, st, 0)
		if stdout != "hello from Linux\n" || stderr != "oops\n" || exit != `{"exit_code":3}` {
			t.Errorf("stdout %q stderr %q exit %q", stdout, stderr, exit)
		}
		golden(t, "gvisor_exec_failed.json", e.do("GET", "/v1/boxes/gv/exec/"+ex.ID, "").body)
	})
	t.Run("Files", func(t *testing.T) {
		r := e.upload("gv", part{name: "dest", value: "/root/dir/f.txt"}, part{name: "file", value: "in gvisor\n", file: true})
		if r.status != 200 {
			t.Fatalf("upload: %d %s", r.status, r.body)
		}
		if d := e.download("gv", "/root/dir/f.txt"); d.status != 200 || string(d.body) != "in gvisor\n" {
			t.Fatalf("download: %d %q", d.status, d.body)
		}
		ex := e.startExec("gv", "cat", "/root/dir/f.txt")
		st, err := e.readSSE(ctx, "/v1/boxes/gv/exec/"+ex.ID+"/events")
		if err != nil {
			t.Fatal(err)
		}
		if stdout, _, _ := checkExecStream(t, st, 0); stdout != "in gvisor\n" {
			t.Errorf("cat in the box: %q", stdout)
		}
		if d := e.download("gv", "/root/nope"); d.status != 400 || !strings.Contains(string(d.body), "not found in box") {
			t.Errorf("missing file: %d %s", d.status, d.body)
		}
	})
	t.Run("Attach", func(t *testing.T) {
		c := e.attach(ctx, box.ID, url.Values{"shell": {"/bin/sh"}, "cols": {"90"}, "rows": {"20"}})
		c.send(ctx, "stty size; echo x$((40+2))\n")
		if _, err := c.readUntil(ctx, func(s string) bool { return strings.Contains(s, "20 90") && strings.Contains(s, "x42") }); err != nil {
			t.Fatalf("%v; output %q", err, c.out.String())
		}
		c.send(ctx, "exit 4\n")
		if m := c.finish(ctx); m["type"] != "exit" || m["code"] != float64(4) {
			t.Errorf("final frame %v", m)
		}
	})
	t.Run("StopStartKeepsFiles", func(t *testing.T) {
		if r := e.do("POST", "/v1/boxes/gv:stop", ""); r.status != 200 {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/v1/boxes/gv:start", ""); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		if d := e.download("gv", "/root/dir/f.txt"); d.status != 200 || string(d.body) != "in gvisor\n" {
			t.Fatalf("file after restart: %d %q", d.status, d.body)
		}
	})
	t.Run("Run", func(t *testing.T) {
		r := e.do("POST", "/v1/run", `{"image":"busybox","cmd":["sh","-c","echo ephemeral; exit 7"]}`)
		if r.status != 200 || string(r.body) != `{"exit_code":7,"stdout":"ephemeral\n","stderr":"","error_message":null}`+"\n" {
			t.Errorf("run: %d %s", r.status, r.body)
		}
	})
	t.Run("Remove", func(t *testing.T) {
		if r := e.do("DELETE", "/v1/boxes/gv?force=true", ""); r.status != 200 {
			t.Fatalf("remove: %d %s", r.status, r.body)
		}
	})
	t.Run("CompatScript", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			testenv.Skip(t, "python3 not installed")
		}
		out, err := exec.CommandContext(ctx, py, "../scripts/compat_sdk.py", s.url).CombinedOutput()
		t.Logf("compat_sdk.py against gVisor:\n%s", out)
		if err != nil {
			t.Fatalf("compat script: %v", err)
		}
	})
}
