package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/image"
)

// TestCLI_Snapshots runs checkpoint, snapshots (ls, inspect, rm), restore
// and fork against a server whose Manager drives real gVisor sandboxes.
func TestCLI_Snapshots(t *testing.T) {
	env := gvisorEnv(t, t.TempDir())
	var runsc, initPath string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, gvisor.RunscEnv+"="); ok {
			runsc = v
		}
		if v, ok := strings.CutPrefix(kv, gvisor.InitEnv+"="); ok {
			initPath = v
		}
	}
	dir := t.TempDir()
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor"), Runsc: runsc, InitPath: initPath})
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(imgs), boxrun.WithLimits(64, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		boxes, _ := m.List(context.Background(), boxrun.BoxFilter{})
		for _, b := range boxes {
			m.Remove(context.Background(), b.ID, true)
		}
		m.Close()
	})
	s := serveManager(t, m)
	ok := func(args ...string) string {
		t.Helper()
		r := s.run(t, "", args...)
		if r.code != 0 {
			t.Fatalf("boxrun %v: %+v", args, r)
		}
		return r.stdout
	}
	ref := "dir:" + boxruntest.BusyboxImage(t).Rootfs
	ok("create", "--name", "cli-src", "--memory", "256", "--workdir", "/", ref)
	ok("exec", "cli-src", "sh", "-c", `echo kept > /data.txt; setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`)
	count := func(box string, min int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := ok("exec", box, "cat", "/count")
			if n, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && n >= min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter of %s did not reach %d (%q)", box, min, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := count("cli-src", 10)

	id := strings.TrimSpace(ok("checkpoint", "--leave-running", "cli-src"))
	if !strings.HasPrefix(id, "snap_") {
		t.Fatalf("checkpoint printed %q", id)
	}
	if out := ok("snapshots"); !strings.Contains(out, id) || !strings.Contains(out, "SOURCE BOX") {
		t.Errorf("snapshots table:\n%s", out)
	}
	if out := ok("snapshots", "ls", "-q"); strings.TrimSpace(out) != id {
		t.Errorf("snapshots ls -q: %q", out)
	}
	var snap boxrun.Snapshot
	if err := json.Unmarshal([]byte(ok("snapshots", "inspect", id)), &snap); err != nil || snap.ID != id || snap.Driver != "gvisor" {
		t.Errorf("snapshots inspect: %+v %v", snap, err)
	}
	rid := strings.TrimSpace(ok("restore", "--name", "cli-r1", id))
	count("cli-r1", before+5)
	if out := ok("exec", rid, "cat", "/data.txt"); out != "kept\n" {
		t.Errorf("file in the restored box: %q", out)
	}
	forks := strings.Fields(ok("fork", "-n", "2", "cli-src"))
	if len(forks) != 2 {
		t.Fatalf("fork -n 2 printed %q", forks)
	}
	for _, f := range forks {
		count(f, before+5)
	}

	if out := ok("hibernate", "cli-r1"); !strings.HasPrefix(out, "Hibernated ") {
		t.Errorf("hibernate: %q", out)
	}
	count("cli-r1", before+5) // exec resumes it

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fork", "-n", "0", "cli-src"}, "count must be between 1 and 16"},
		{[]string{"restore", "--name", "cli-r1", id}, "already exists"},
		{[]string{"restore", "snap_nope"}, "Snapshot 'snap_nope' not found"},
		{[]string{"checkpoint"}, "checkpoint needs exactly one BOX"},
	} {
		if r := s.run(t, "", tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("boxrun %v: %+v, want a failure saying %q", tc.args, r, tc.want)
		}
	}
	if out := ok("snapshots", "rm", id); strings.TrimSpace(out) != "Removed "+id {
		t.Errorf("snapshots rm: %q", out)
	}
	if out := ok("snapshots"); !strings.Contains(out, "No snapshots found.") {
		t.Errorf("snapshots after rm: %q", out)
	}
}
