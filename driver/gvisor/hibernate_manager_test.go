package gvisor_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
)

// rssOf sums the resident memory (KiB) of the host processes whose
// command line mentions handle (the sandbox, its gofer).
func rssOf(t *testing.T, handle string) int64 {
	t.Helper()
	var total int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(handle)) {
			continue
		}
		st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += n
			}
		}
	}
	return total
}

// waitHibernated waits until box is stopped and hibernated.
func waitHibernated(t *testing.T, m *boxrun.Manager, box string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lt, err := m.Lifetime(context.Background(), box)
		if err == nil && lt.Hibernated {
			if b, _ := m.Get(context.Background(), box); b.Status == boxapi.StatusStopped {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := m.Get(context.Background(), box)
			t.Fatalf("box %s not hibernated (lifetime %+v, box %+v)", box, lt, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestManager_Hibernate: a hibernated box is stopped, its sandbox
// processes (and their memory) are gone, and an exec, a file transfer or a
// Start resumes it with its memory: also after a restart. Removing it
// removes its saved state.
func TestManager_Hibernate(t *testing.T) {
	m, dir := snapEnv(t)
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	b, before := counterBox(t, m, "hib")
	if _, code := mexec(t, m, b.ID, "sh", "-c", "head -c 64M /dev/zero | tr '\\0' x > /dev/null; true"); code != 0 {
		t.Fatal("touch memory")
	}
	rss := rssOf(t, b.Handle)
	hb, err := m.Hibernate(ctx, "hib")
	if err != nil {
		t.Fatalf("hibernate: %v", err)
	}
	if hb.Status != boxapi.StatusStopped {
		t.Errorf("hibernated box: %s", hb.Status)
	}
	after := rssOf(t, b.Handle)
	t.Logf("sandbox RSS %d KiB before, %d KiB after hibernation", rss, after)
	if rss == 0 || after != 0 {
		t.Errorf("RSS %d KiB before, %d KiB after: the sandbox's memory is not freed", rss, after)
	}
	if ps := processesMentioning(t, b.Handle); len(ps) > 0 {
		t.Errorf("sandbox processes left: %v", ps)
	}
	if lt, _ := m.Lifetime(ctx, "hib"); !lt.Hibernated {
		t.Errorf("lifetime of a hibernated box: %+v", lt)
	}
	if list, _ := m.Snapshots(ctx); len(list) != 0 {
		t.Errorf("the hibernated state is listed as a snapshot: %+v", list)
	}
	// An exec resumes it: the counter continues.
	n := mcount(t, m, "hib", before)
	t.Logf("counter %d at hibernation, %d after resume", before, n)
	if got, _ := m.Get(ctx, "hib"); got.Status != boxapi.StatusRunning || got.Handle == b.Handle {
		t.Errorf("resumed box: %+v", got)
	}
	if lt, _ := m.Lifetime(ctx, "hib"); lt.Hibernated {
		t.Errorf("resumed box still hibernated")
	}
	if out, _ := mexec(t, m, "hib", "cat", "/data.txt"); out != "kept\n" {
		t.Errorf("file after resume: %q", out)
	}

	// Hibernated across a restart; a file transfer resumes it.
	if _, err := m.Hibernate(ctx, "hib"); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openSnapManager(t, dir)
	t.Cleanup(func() {
		boxes, _ := m2.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			_ = m2.Remove(context.Background(), b.ID, true)
		}
		m2.Close()
	})
	if lt, _ := m2.Lifetime(ctx, "hib"); !lt.Hibernated {
		t.Fatalf("hibernation lost in a restart: %+v", lt)
	}
	var tar bytes.Buffer
	if err := m2.CopyOut(ctx, "hib", "/data.txt", &tar); err != nil {
		t.Fatalf("copy out of a hibernated box: %v", err)
	}
	if !bytes.Contains(tar.Bytes(), []byte("kept\n")) {
		t.Error("copy out did not return the file")
	}
	mcount(t, m2, "hib", n)

	// Start resumes too.
	if _, err := m2.Hibernate(ctx, "hib"); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Start(ctx, "hib"); err != nil || got.Status != boxapi.StatusRunning {
		t.Fatalf("start of a hibernated box: %+v %v", got, err)
	}
	mcount(t, m2, "hib", n)

	// Removed while hibernated: its saved state goes.
	if _, err := m2.Hibernate(ctx, "hib"); err != nil {
		t.Fatal(err)
	}
	if err := m2.Remove(ctx, "hib", false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "snapshots")); len(ents) != 0 {
		t.Errorf("hibernated state left after removal: %d", len(ents))
	}
}

// TestManager_AutoHibernate: with WithHibernateAfter, an idle box
// hibernates by itself, an exec resumes it, and the timer survives a
// restart (re-armed from SQLite).
func TestManager_AutoHibernate(t *testing.T) {
	m, dir := snapEnv(t, boxrun.WithHibernateAfter(3*time.Second))
	if rootlessRefusesSnapshots(t, m) {
		return
	}
	ctx := context.Background()
	b, before := counterBox(t, m, "auto")
	if lt, _ := m.Lifetime(ctx, b.ID); lt.OnExpire != boxapi.ExpireHibernate || lt.IdleTimeout != 3*time.Second {
		t.Errorf("lifetime with WithHibernateAfter: %+v", lt)
	}
	waitHibernated(t, m, b.ID)
	n := mcount(t, m, b.ID, before)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openSnapManager(t, dir, boxrun.WithHibernateAfter(3*time.Second))
	t.Cleanup(func() {
		boxes, _ := m2.List(context.Background(), boxapi.BoxFilter{})
		for _, b := range boxes {
			_ = m2.Remove(context.Background(), b.ID, true)
		}
		m2.Close()
	})
	waitHibernated(t, m2, b.ID)
	mcount(t, m2, b.ID, n)
	// A box with its own on_expire keeps it.
	own, err := m2.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), MemoryMB: 256, Workdir: "/", IdleTimeout: time.Hour, OnExpire: boxapi.ExpireStop})
	if err != nil {
		t.Fatal(err)
	}
	if lt, _ := m2.Lifetime(ctx, own.ID); lt.OnExpire != boxapi.ExpireStop {
		t.Errorf("explicit on_expire replaced: %+v", lt)
	}
}
