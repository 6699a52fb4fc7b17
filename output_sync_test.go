package boxrun_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// A finished exec's log is synced in the background and marked so; Close
// leaves none unsynced.
func TestOutputSync_Background(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	box := mustCreate(t, m, boxrun.BoxSpec{Image: "test"})
	var ids []string
	for range 5 {
		e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo out; echo err >&2"}}, nil, nil)
		if err != nil || e.Status != boxrun.ExecSucceeded {
			t.Fatal(e, err)
		}
		ids = append(ids, e.ID)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, synced, err := boxrun.OutputSyncForTest(ctx, m, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("finished log not marked synced within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	for _, id := range ids {
		size, synced, err := boxrun.OutputSyncForTest(ctx, m, id)
		if err != nil || !synced || size == 0 {
			t.Fatalf("%s after Close: size %d synced %v err %v", id, size, synced, err)
		}
		out, errs := streams(collect(t, m, id, -1))
		if out != "out\n" || errs != "err\n" {
			t.Fatalf("%s replays %q %q", id, out, errs)
		}
	}
}

// A power loss before the background sync: the log lost its tail (torn
// mid-record) while the exit with the full size committed. Open keeps the
// valid prefix, records its size, and replay returns exactly that prefix
// and the exit, without an error.
func TestOutputSync_PowerLossRepair(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := boxruntest.OpenManager(t, dir)
	box := mustCreate(t, m, boxrun.BoxSpec{Image: "test"})
	// Three separate writes: three records.
	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo one; sleep 0.2; echo two; sleep 0.2; echo three"}}, nil, nil)
	if err != nil || e.Status != boxrun.ExecSucceeded {
		t.Fatal(e, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "output", e.ID+".log")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The last record ("three\n", 25-byte header + 6 bytes) loses its
	// last 3 bytes; reopen with the log marked unsynced.
	if err := os.Truncate(path, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir)
	if err := boxrun.MarkUnsyncedForTest(ctx, m, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = boxruntest.OpenManager(t, dir)
	defer m.Close()
	size, synced, err := boxrun.OutputSyncForTest(ctx, m, e.ID)
	if err != nil || !synced || size != fi.Size()-(25+6) {
		t.Fatalf("repaired: size %d (want %d) synced %v err %v", size, fi.Size()-(25+6), synced, err)
	}
	evs := collect(t, m, e.ID, -1)
	out, _ := streams(evs)
	if out != "one\ntwo\n" || evs[len(evs)-1].Kind != boxrun.KindExit {
		t.Fatalf("replay after repair: %q, last %+v", out, evs[len(evs)-1])
	}
	if got, _ := os.Stat(path); got.Size() != size {
		t.Fatalf("log is %d bytes, committed %d", got.Size(), size)
	}
	if !strings.Contains(evs[len(evs)-1].Data, "exit_code") {
		t.Fatalf("exit event: %q", evs[len(evs)-1].Data)
	}
}
