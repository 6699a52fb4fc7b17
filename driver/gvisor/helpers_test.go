package gvisor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/mountutil"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/boxrun/boxrun/sandbox"
)

// newDriver returns a driver on a fresh directory, or skips the test when
// the host cannot run gVisor (not root, runsc missing).
func newDriver(t testing.TB) (*gvisor.Driver, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gvisor")
	rec := &handleRecorder{}
	d, err := gvisor.New(gvisor.Config{Dir: dir, Logger: slog.New(rec)})
	if errors.Is(err, gvisor.ErrUnsupported) {
		testenv.Skip(t, fmt.Sprintf("gvisor driver unsupported here: %v", err))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A new driver on the same directory prunes everything, and then
		// nothing may be left on the host.
		d.Close()
		d2, err := gvisor.New(gvisor.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := d2.Prune(context.Background(), nil); err != nil {
			t.Errorf("prune: %v", err)
		}
		d2.Close()
		assertNothingLeft(t, dir, rec.handles()...)
	})
	return d, dir
}

// busyboxRootfs returns the shared, read-only busybox rootfs of
// boxruntest.BusyboxImage (skipping the test without /bin/busybox).
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	return boxruntest.BusyboxImage(t).Rootfs
}

// run execs cmd in the box and returns stdout, stderr and the exit code.
func run(t testing.TB, d *gvisor.Driver, h string, stdin io.Reader, cmd ...string) (string, string, int) {
	t.Helper()
	r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: cmd, Stdin: stdin}, 30*time.Second)
	return r.Stdout, r.Stderr, r.Code
}

func create(t testing.TB, d *gvisor.Driver, spec sandbox.Spec) string {
	t.Helper()
	h, err := d.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return h
}

func gvisorNew(t testing.TB, dir string) (*gvisor.Driver, error) {
	t.Helper()
	return gvisor.New(gvisor.Config{Dir: dir})
}

// mountsUnder lists the host mounts at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	ms, err := mountutil.Under(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// processesMentioning lists host processes whose command line contains s.
func processesMentioning(t testing.TB, s string) []string {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // a zombie waiting for its reaper holds nothing
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// assertNothingLeftOf checks that box h has nothing left on the host: no
// box dir, no runsc files, no cgroup, no process, no mount.
func assertNothingLeftOf(t testing.TB, dir, h string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "boxes", h)); !os.IsNotExist(err) {
		t.Errorf("box dir of %s still there (%v)", h, err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "run"))
	for _, e := range ents {
		if strings.Contains(e.Name(), h) {
			t.Errorf("runsc file left: %s", e.Name())
		}
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/boxrun/" + h)
	if len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if ps := processesMentioning(t, h); len(ps) > 0 {
		t.Errorf("processes left: %v", ps)
	}
	if ms := mountsUnder(t, filepath.Join(dir, "boxes", h)); len(ms) > 0 {
		t.Errorf("mounts left: %v", ms)
	}
}

// assertNothingLeft checks assertNothingLeftOf for every handle, and that no
// mount, runsc file or process of the driver's directory is left at all.
func assertNothingLeft(t testing.TB, dir string, handles ...string) {
	t.Helper()
	for _, h := range handles {
		assertNothingLeftOf(t, dir, h)
	}
	if ms := mountsUnder(t, dir); len(ms) > 0 {
		t.Errorf("mounts left under %s: %v", dir, ms)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "run")); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("runsc root not empty: %v", names)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "boxes")); len(ents) > 0 {
		t.Errorf("boxes dir not empty: %d entries", len(ents))
	}
	if ps := processesMentioning(t, dir); len(ps) > 0 {
		t.Errorf("processes left: %v", ps)
	}
}

// handleRecorder is a slog.Handler that remembers every "handle" attribute
// the driver logs, so cleanup checks can look for each box's leftovers
// (cgroups included) even after a failed Create.
type handleRecorder struct {
	seen handleSet
}

// handleSet is a set of driver handles, safe for concurrent use.
type handleSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *handleSet) add(h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	s.m[h] = true
}

func (s *handleSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for h := range s.m {
		out = append(out, h)
	}
	return out
}

func (r *handleRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *handleRecorder) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "handle" {
			r.seen.add(a.Value.String())
		}
		return true
	})
	return nil
}

func (r *handleRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *handleRecorder) WithGroup(string) slog.Handler      { return r }

func (r *handleRecorder) handles() []string { return r.seen.list() }
