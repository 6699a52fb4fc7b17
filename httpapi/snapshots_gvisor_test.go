package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
)

// TestGVisorSnapshots drives the snapshot extension endpoints over real
// HTTP against real gVisor sandboxes, with raw requests (status codes, key
// sets) and through package client (boxapi.Snapshotter).
func TestGVisorSnapshots(t *testing.T) {
	s := newGVisorEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("unreachable: newGVisorEnv needs root")
	}
	e := &env{t: t, mgr: s.mgr, url: s.url}
	c, err := client.New(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox", Name: "src", MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	loop := `echo kept > /data.txt; setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done' </dev/null >/dev/null 2>&1 &`
	if _, err := c.Exec(ctx, "src", boxapi.ExecRequest{Cmd: []string{"sh", "-c", loop}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	count := func(box string, min int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var out strings.Builder
			if _, err := c.Exec(ctx, box, boxapi.ExecRequest{Cmd: []string{"cat", "/count"}}, &out, nil); err != nil {
				t.Fatal(err)
			}
			if n, err := strconv.Atoi(strings.TrimSpace(out.String())); err == nil && n >= min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter of %s did not reach %d (%q)", box, min, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := count("src", 10)

	// Busy: a running exec refuses the checkpoint with 409 BOX_BUSY.
	sleeper, err := c.StartExec(ctx, "src", boxapi.ExecRequest{Cmd: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	wantEnvelope(t, e.do("POST", "/v1/boxes/src:checkpoint", `{"leave_running":true}`), 409, "BOX_BUSY")
	if _, err := c.CancelExec(ctx, sleeper.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitExec(ctx, sleeper.ID); err != nil {
		t.Fatal(err)
	}

	r := e.do("POST", "/v1/boxes/src:checkpoint", `{"leave_running":true}`)
	if r.status != 201 {
		t.Fatalf("checkpoint: %d %s", r.status, r.body)
	}
	var keys map[string]any
	if err := json.Unmarshal(r.body, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "source_box_id", "image", "cpu", "memory_mb", "disk_size_gb", "workdir", "env", "size_bytes", "driver", "cpu_features", "created_at"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("snapshot JSON lacks %q: %s", k, r.body)
		}
	}
	id, _ := keys["id"].(string)
	if keys["source_box_id"] != src.ID {
		t.Errorf("source_box_id %v, want %s", keys["source_box_id"], src.ID)
	}
	list, err := c.Snapshots(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("snapshots: %+v %v", list, err)
	}
	if got, err := c.GetSnapshot(ctx, id); err != nil || got.SourceBoxID != src.ID || got.SizeBytes <= 0 {
		t.Errorf("get snapshot: %+v %v", got, err)
	}

	// Restore through the client: the counter continues, the files are there.
	rb, err := c.Restore(ctx, id, boxapi.RestoreSpec{Name: "r1"})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if rb.Name != "r1" || rb.Status != boxapi.StatusRunning {
		t.Errorf("restored: %+v", rb)
	}
	count("r1", before+5)
	var out strings.Builder
	if _, err := c.Exec(ctx, "r1", boxapi.ExecRequest{Cmd: []string{"cat", "/data.txt"}}, &out, nil); err != nil || out.String() != "kept\n" {
		t.Errorf("file after restore: %q %v", out.String(), err)
	}

	// Bad input, on the wire.
	wantEnvelope(t, e.do("POST", "/v1/snapshots/"+id+":restore", `{"name":"r1"}`), 409, "NAME_ALREADY_EXISTS")
	wantEnvelope(t, e.do("POST", "/v1/snapshots/snap_nope:restore", `{}`), 404, "SNAPSHOT_NOT_FOUND")
	wantEnvelope(t, e.do("GET", "/v1/snapshots/snap_nope", ""), 404, "SNAPSHOT_NOT_FOUND")
	wantEnvelope(t, e.do("POST", "/v1/snapshots/"+id+":bogus", `{}`), 400, "VALIDATION_ERROR")
	wantEnvelope(t, e.do("POST", "/v1/boxes/src:fork", `{"count":0}`), 422, "VALIDATION_ERROR")
	wantEnvelope(t, e.do("POST", "/v1/boxes/src:fork", `{"count":17}`), 422, "VALIDATION_ERROR")
	wantEnvelope(t, e.do("POST", "/v1/boxes/src:fork", `{}`), 422, "VALIDATION_ERROR")
	wantEnvelope(t, e.do("POST", "/v1/boxes/nope:fork", `{"count":1}`), 404, "BOX_NOT_FOUND")
	wantEnvelope(t, e.do("POST", "/v1/boxes/nope:checkpoint", ""), 404, "BOX_NOT_FOUND")
	if _, err := c.Restore(ctx, "snap_nope", boxapi.RestoreSpec{}); !errors.Is(err, boxapi.ErrNotFound) || boxapi.ErrorCode(err) != boxapi.CodeSnapshotNotFound {
		t.Errorf("client restore of an unknown snapshot: %v", err)
	}

	// Fork through the client.
	forks, err := c.Fork(ctx, "src", 2)
	if err != nil || len(forks) != 2 {
		t.Fatalf("fork: %v %v", forks, err)
	}
	for _, f := range forks {
		count(f.ID, before+5)
	}

	// Checkpoint (stopping), then a stopped box is refused.
	if _, err := c.Checkpoint(ctx, "src", boxapi.CheckpointOptions{}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if b, _ := c.Get(ctx, "src"); b.Status != boxapi.StatusStopped {
		t.Errorf("source after a checkpoint: %s", b.Status)
	}
	wantEnvelope(t, e.do("POST", "/v1/boxes/src:checkpoint", ""), 400, "BOX_NOT_RUNNING")

	// Hibernate r1: stopped, lifetime says so, an exec resumes it.
	if r := e.do("POST", "/v1/boxes/r1:hibernate", ""); r.status != 200 || !strings.Contains(string(r.body), `"status":"stopped"`) {
		t.Errorf("hibernate: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/boxes/r1/lifetime", ""); !strings.Contains(string(r.body), `"hibernated":true`) {
		t.Errorf("lifetime of a hibernated box: %s", r.body)
	}
	count("r1", before+5)
	if b, err := c.Hibernate(ctx, "r1"); err != nil || b.Status != boxapi.StatusStopped {
		t.Errorf("client hibernate: %+v %v", b, err)
	}
	if b, err := c.Start(ctx, "r1"); err != nil || b.Status != boxapi.StatusRunning {
		t.Errorf("start of a hibernated box: %+v %v", b, err)
	}
	count("r1", before+5)

	// Removal.
	if r := e.do("DELETE", "/v1/snapshots/"+id, ""); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"ok":true}` {
		t.Errorf("delete snapshot: %d %s", r.status, r.body)
	}
	wantEnvelope(t, e.do("DELETE", "/v1/snapshots/"+id, ""), 404, "SNAPSHOT_NOT_FOUND")
	if list, _ := c.Snapshots(ctx); len(list) != 1 {
		t.Errorf("snapshots left: %+v", list)
	}
}

// wantEnvelope checks an error response's status and code.
func wantEnvelope(t *testing.T, r response, status int, code string) {
	t.Helper()
	var env struct{ Code, Message string }
	if err := json.Unmarshal(r.body, &env); err != nil || r.status != status || env.Code != code || env.Message == "" {
		t.Errorf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}
