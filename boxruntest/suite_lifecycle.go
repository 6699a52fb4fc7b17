package boxruntest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// wantState fails t unless handle is in state want.
func (s *suite) wantState(t *testing.T, handle string, want sandbox.State) {
	t.Helper()
	got, err := s.d.State(t.Context(), handle)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if got != want {
		t.Fatalf("State = %q, want %q", got, want)
	}
}

// volumeUserID is the host user (by ID only) that owns the conformance
// suite's read-write volume when the suite runs as root.
const volumeUserID = 4321

// testLifecycle covers volumes, Stop, Start and Prune on a second sandbox.
func (s *suite) testLifecycle(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	for _, dir := range []string{rw, ro} {
		if err := os.WriteFile(filepath.Join(dir, "host.txt"), []byte("from host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// As the original clients do, the read-write volume is an ordinary
	// user's directory: a driver running as root need not let box root
	// write as host root (gVisor refuses host root's read-write volumes).
	if os.Geteuid() == 0 {
		if err := os.Chown(rw, volumeUserID, volumeUserID); err != nil {
			t.Fatal(err)
		}
	}
	volumes := []boxrun.Volume{
		{HostPath: rw, GuestPath: "/mnt/rw"},
		{HostPath: ro, GuestPath: "/mnt/ro", Readonly: true},
	}
	if s.h.NoVolumes {
		volumes = nil
	}
	h := s.create(t, "lifecycle", "/root", volumes...)
	ctx := t.Context()
	s.wantState(t, h, sandbox.Running)
	if err := s.d.CopyIn(ctx, h, "/root", mkTar(t, tarEntry{Name: "copied.txt", Body: "copied\n"})); err != nil {
		t.Fatal(err)
	}
	if r := s.run(t, h, sh("/root", "echo written > written.txt")); r.code != 0 {
		t.Fatalf("write: code %d, stderr %q", r.code, r.stderr)
	}
	sleeper, err := s.d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sleep", "30"}, Dir: "/root"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Volumes", func(t *testing.T) {
		if s.h.NoVolumes {
			t.Skip("DriverHarness.NoVolumes: the driver does not support volumes yet")
		}
		if r := s.run(t, h, sh("/mnt/rw", "cat host.txt && echo from box > box.txt")); r.code != 0 || r.stdout != "from host\n" {
			t.Errorf("rw volume: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if b, err := os.ReadFile(filepath.Join(rw, "box.txt")); err != nil || string(b) != "from box\n" {
			t.Errorf("file written in the rw volume, seen on the host: %q, %v", b, err)
		}
		if r := s.run(t, h, sh("/mnt/ro", "cat host.txt")); r.code != 0 || r.stdout != "from host\n" {
			t.Errorf("ro volume: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if s.h.HostProcesses {
			return // the fake cannot enforce Readonly
		}
		if r := s.run(t, h, sh("/mnt/ro", "echo x > box.txt")); r.code == 0 {
			t.Error("writing to a read-only volume succeeded")
		}
		if _, err := os.Stat(filepath.Join(ro, "box.txt")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read-only volume written on the host: %v", err)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		if err := s.d.Stop(ctx, h); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		// The process is gone: Wait returns (a code or an error).
		_, _ = waitProc(t, sleeper, quickLimit)
		s.wantState(t, h, sandbox.Stopped)
		if err := s.d.Stop(ctx, h); err != nil {
			t.Errorf("Stop of a stopped sandbox: %v", err)
		}
		if p, err := s.d.Exec(ctx, h, sh("/root", "true")); err == nil {
			_, _ = p.Wait()
			t.Error("Exec in a stopped sandbox succeeded")
		}
	})

	t.Run("Start", func(t *testing.T) {
		if err := s.d.Start(ctx, h); err != nil {
			t.Fatalf("Start: %v", err)
		}
		s.wantState(t, h, sandbox.Running)
		if err := s.d.Start(ctx, h); err == nil {
			t.Error("Start of a running sandbox succeeded")
		}
		r := s.run(t, h, sh("/root", "cat copied.txt written.txt"))
		if want := "copied\nwritten\n"; r.stdout != want {
			t.Errorf("files after stop and start: %q (stderr %q), want %q", r.stdout, r.stderr, want)
		}
		if s.h.NoVolumes {
			return
		}
		r = s.run(t, h, sh("/mnt/rw", "cat box.txt"))
		if want := "from box\n"; r.stdout != want {
			t.Errorf("rw volume after stop and start: %q (stderr %q), want %q", r.stdout, r.stderr, want)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		if err := s.d.Prune(ctx, []string{s.shared}); err != nil {
			t.Fatalf("Prune: %v", err)
		}
		s.wantState(t, h, sandbox.Missing)
		s.wantState(t, s.shared, sandbox.Running)
		if err := s.d.Remove(ctx, h); err != nil {
			t.Errorf("Remove of a pruned sandbox: %v", err)
		}
		// Volumes belong to the host, not to the sandbox.
		if s.h.NoVolumes {
			return
		}
		for _, f := range []string{filepath.Join(rw, "host.txt"), filepath.Join(rw, "box.txt"), filepath.Join(ro, "host.txt")} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("volume content gone after the sandbox: %v", err)
			}
		}
	})
}

// testRemove removes the shared sandbox while a process runs in it.
func (s *suite) testRemove(t *testing.T) {
	ctx := t.Context()
	p, err := s.d.Exec(ctx, s.shared, sandbox.ProcessSpec{Cmd: []string{"sleep", "30"}, Dir: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.d.Remove(ctx, s.shared); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	_, _ = waitProc(t, p, quickLimit)
	s.wantState(t, s.shared, sandbox.Missing)
	if err := s.d.Remove(ctx, s.shared); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if p, err := s.d.Exec(ctx, s.shared, sh("/tmp", "true")); err == nil {
		_, _ = p.Wait()
		t.Error("Exec in a removed sandbox succeeded")
	}
	if err := s.d.CopyOut(ctx, s.shared, "/tmp", io.Discard); err == nil {
		t.Error("CopyOut from a removed sandbox succeeded")
	}
	s.wantState(t, "boxruntest-never-created", sandbox.Missing)
	if err := s.d.Remove(context.Background(), "boxruntest-never-created"); err != nil {
		t.Errorf("Remove of an unknown handle: %v", err)
	}
}
