package boxruntest

import (
	"context"
	"io"
	"testing"

	"github.com/boxrun/boxrun"
)

// wantState fails t unless handle is in state want.
func (s *suite) wantState(t *testing.T, handle string, want boxrun.SandboxState) {
	t.Helper()
	got, err := s.d.State(t.Context(), handle)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if got != want {
		t.Fatalf("State = %q, want %q", got, want)
	}
}

// testLifecycle covers Stop, Start and Prune on a second sandbox.
func (s *suite) testLifecycle(t *testing.T) {
	h := s.create(t, "lifecycle", "/root")
	ctx := t.Context()
	s.wantState(t, h, boxrun.SandboxRunning)
	if err := s.d.CopyIn(ctx, h, "/root", mkTar(t, tarEntry{Name: "copied.txt", Body: "copied\n"})); err != nil {
		t.Fatal(err)
	}
	if r := s.run(t, h, sh("/root", "echo written > written.txt")); r.code != 0 {
		t.Fatalf("write: code %d, stderr %q", r.code, r.stderr)
	}
	sleeper, err := s.d.Exec(ctx, h, boxrun.ProcessSpec{Cmd: []string{"sleep", "30"}, Dir: "/root"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Stop", func(t *testing.T) {
		if err := s.d.Stop(ctx, h); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		// The process is gone: Wait returns (a code or an error).
		_, _ = waitProc(t, sleeper, quickLimit)
		s.wantState(t, h, boxrun.SandboxStopped)
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
		s.wantState(t, h, boxrun.SandboxRunning)
		if err := s.d.Start(ctx, h); err == nil {
			t.Error("Start of a running sandbox succeeded")
		}
		r := s.run(t, h, sh("/root", "cat copied.txt written.txt"))
		if want := "copied\nwritten\n"; r.stdout != want {
			t.Errorf("files after stop and start: %q (stderr %q), want %q", r.stdout, r.stderr, want)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		if err := s.d.Prune(ctx, []string{s.shared}); err != nil {
			t.Fatalf("Prune: %v", err)
		}
		s.wantState(t, h, boxrun.SandboxMissing)
		s.wantState(t, s.shared, boxrun.SandboxRunning)
		if err := s.d.Remove(ctx, h); err != nil {
			t.Errorf("Remove of a pruned sandbox: %v", err)
		}
	})
}

// testRemove removes the shared sandbox while a process runs in it.
func (s *suite) testRemove(t *testing.T) {
	ctx := t.Context()
	p, err := s.d.Exec(ctx, s.shared, boxrun.ProcessSpec{Cmd: []string{"sleep", "30"}, Dir: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.d.Remove(ctx, s.shared); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	_, _ = waitProc(t, p, quickLimit)
	s.wantState(t, s.shared, boxrun.SandboxMissing)
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
	s.wantState(t, "boxruntest-never-created", boxrun.SandboxMissing)
	if err := s.d.Remove(context.Background(), "boxruntest-never-created"); err != nil {
		t.Errorf("Remove of an unknown handle: %v", err)
	}
}
