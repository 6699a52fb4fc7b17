package qemu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/qemu"
)

// TestManager_Snapshots runs the Manager's snapshot API over the qemu
// driver: Fork makes two boxes that continue the source's memory (a
// process's shell variable) with its files, private to each; Hibernate
// stops a box and its next exec resumes it where it was; Checkpoint
// (stopping the box) and Restore make a new box from the snapshot.
func TestManager_Snapshots(t *testing.T) {
	requireQEMU(t)
	dir := t.TempDir()
	d, err := qemu.New(qemu.Config{Dir: dir + "/qemu", Agent: agent.get(t)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(oneImage{boxruntest.BusyboxImage(t)}), boxrun.WithLimits(8, 8<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	mexec := func(id string, cmd ...string) (string, int) {
		t.Helper()
		var out strings.Builder
		e, err := m.Exec(ctx, id, boxapi.ExecRequest{Cmd: cmd}, &out, &out)
		if err != nil {
			t.Fatalf("exec %v in %s: %v", cmd, id, err)
		}
		return out.String(), *e.ExitCode
	}
	waitMem := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			out, _ := mexec(id, "cat", "/tmp/mem")
			if out == "in-memory\n" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /tmp/mem is %q", id, out)
			}
		}
	}
	b, err := m.Create(ctx, boxapi.BoxSpec{Image: "busybox", CPU: 1, MemoryMB: 256, DiskSizeGB: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, code := mexec(b.ID, "sh", "-c", "echo kept > /root/f; setsid sh -c 'v=in-memory; while true; do echo $v > /tmp/mem; sleep 0.1; done' </dev/null >/dev/null 2>&1 &"); code != 0 {
		t.Fatal("start the loop")
	}
	waitMem(b.ID)

	forks, err := m.Fork(ctx, b.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forks {
		mexec(f.ID, "rm", "/tmp/mem")
		waitMem(f.ID) // the loop runs on in the fork
		if out, _ := mexec(f.ID, "cat", "/root/f"); out != "kept\n" {
			t.Errorf("fork %s reads %q", f.ID, out)
		}
	}
	mexec(forks[0].ID, "sh", "-c", "echo mine > /root/mine")
	for _, other := range []string{forks[1].ID, b.ID} {
		if _, code := mexec(other, "cat", "/root/mine"); code == 0 {
			t.Errorf("a fork's file shows in %s", other)
		}
	}

	if _, err := m.Hibernate(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Get(ctx, b.ID); err != nil || got.Status != boxrun.StatusStopped {
		t.Fatalf("after Hibernate: %+v, %v", got, err)
	}
	mexec(b.ID, "rm", "/tmp/mem") // resumes it
	waitMem(b.ID)

	s, err := m.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot %s: %d bytes", s.ID, s.SizeBytes)
	r, err := m.Restore(ctx, s.ID, boxapi.RestoreSpec{Name: "restored"})
	if err != nil {
		t.Fatal(err)
	}
	waitMem(r.ID)
	if out, _ := mexec(r.ID, "cat", "/root/f"); out != "kept\n" {
		t.Errorf("restored box reads %q", out)
	}
	for _, id := range []string{r.ID, forks[0].ID, forks[1].ID, b.ID} {
		if err := m.Remove(ctx, id, true); err != nil {
			t.Error(err)
		}
	}
}
