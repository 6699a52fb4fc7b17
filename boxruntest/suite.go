package boxruntest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// DriverHarness describes a driver to TestDriver.
type DriverHarness struct {
	// New returns the driver under test. TestDriver calls it once and
	// closes the driver at the end; New registers any other cleanup (state
	// directories) with t.
	New func(t *testing.T) sandbox.Driver

	// Image is passed in every SandboxSpec; nil for drivers that need none
	// (the fake). Its Config.Env starts the sandbox env, as the Manager does.
	Image *sandbox.Image

	// HostProcesses says that commands run on the host below a box directory
	// (FakeDriver): pwd then prints a host path ending in the box path, so
	// working directories are compared by suffix.
	HostProcesses bool

	// UserImage is an image whose Config.User is BusyboxUser, normally
	// BusyboxImageWithUser(t, BusyboxUser): the User subtest creates a
	// sandbox with it and checks that processes run as that user. nil
	// skips those checks (unknown user names are checked anyway).
	UserImage *sandbox.Image

	// NoVolumes says that the driver does not support SandboxSpec.Volumes
	// yet: the lifecycle sandbox is then created without them and the
	// volume checks are skipped. Every finished driver must support them.
	NoVolumes bool

	// NewNetworked returns a second driver of the kind under test whose
	// networked boxes forward allowed DNS lookups to dns (the test
	// internet's server): the Network subtest creates a test internet
	// (internal/testinet) and runs on it. nil skips that subtest (an
	// environment skip: BOXRUN_REQUIRE_ALL=1 fails it).
	// NoCheckpoints skips the Snapshot subtest for a driver that
	// implements sandbox.Checkpointer but refuses here (gVisor rootless).
	NoCheckpoints bool

	NewNetworked func(t *testing.T, dns []string) sandbox.Driver
}

// waitLimit bounds every wait on a process in the suite, so a driver that
// hangs fails the test instead of blocking it.
const waitLimit = 30 * time.Second

// quickLimit is how fast a killed process, or one whose background child
// holds its output open, must be reported as finished.
const quickLimit = 10 * time.Second

// TestDriver is the conformance suite of sandbox.Driver: every driver must
// pass it (see the contract in driver.go). It creates two sandboxes: one
// shared by the read-mostly subtests (exec, TTY, copy) and removed at the
// end, and one for the stop/start/prune lifecycle.
//
// Commands are busybox applets called by plain name (sh, cat, head, ...),
// so they run in BusyboxImage's rootfs and on a Debian host alike, and they
// use absolute paths only as ProcessSpec.Dir and copy paths, never in
// command lines (which the fake would resolve on the host).
//
// The suite asks a bit more than the contract's wording in one place: a
// CopyIn entry that resolves out of dst through a symlink must be rejected
// with ErrInvalid even when it would stay inside the sandbox (tarutil
// confines to dst).
func TestDriver(t *testing.T, h DriverHarness) {
	d := h.New(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = d.Close()
		}
	})
	if d.Name() == "" {
		t.Error("Name() is empty")
	}
	s := &suite{d: d, h: h}
	s.shared = s.create(t, "shared", "/work/dir")
	if t.Failed() {
		return
	}

	t.Run("Exec", s.testExec)
	t.Run("TTY", s.testTTY)
	t.Run("User", s.testUser)
	t.Run("Copy", s.testCopy)
	t.Run("Stats", s.testStats)
	t.Run("Watch", s.testWatch)
	t.Run("Network", s.testNetwork)
	t.Run("Snapshot", s.testSnapshot)
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("Remove", s.testRemove)
	t.Run("Close", func(t *testing.T) {
		closed = true
		for i := range 2 {
			if err := d.Close(); err != nil {
				t.Errorf("Close #%d: %v", i+1, err)
			}
		}
	})
}

// suite is the state shared by TestDriver's subtests.
type suite struct {
	d      sandbox.Driver
	h      DriverHarness
	shared string // handle of the shared running sandbox
}

// create makes a running sandbox and removes it when t ends.
func (s *suite) create(t *testing.T, name, workdir string, volumes ...boxrun.Volume) string {
	t.Helper()
	var env []string
	if s.h.Image != nil {
		env = slices.Clone(s.h.Image.Config.Env)
	}
	env = append(env, "BOXRUN_TEST=box", "OVERRIDE=box")
	spec := sandbox.Spec{
		BoxID: "boxruntest-" + name, Image: s.h.Image, CPU: 1, MemoryMB: 256, DiskSizeGB: 1,
		Workdir: workdir, Env: env, Volumes: volumes,
	}
	handle, err := s.d.Create(t.Context(), spec)
	if err != nil && len(volumes) > 0 {
		t.Fatalf("Create %s with volumes: %v (set DriverHarness.NoVolumes while the driver lacks them)", name, err)
	}
	if err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	if handle == "" {
		t.Fatalf("Create %s: empty handle", name)
	}
	t.Cleanup(func() {
		if err := s.d.Remove(context.Background(), handle); err != nil {
			t.Errorf("cleanup: Remove %s: %v", name, err)
		}
	})
	return handle
}

// result is the outcome of run.
type result struct {
	code           int
	stdout, stderr string
}

// run starts spec in handle, waits (bounded by waitLimit) and returns its
// exit code and output. Stdout and Stderr of spec are replaced.
func (s *suite) run(t *testing.T, handle string, spec sandbox.ProcessSpec) result {
	t.Helper()
	return s.runWithin(t, handle, spec, waitLimit)
}

// runWithin is run with a limit on the wait.
func (s *suite) runWithin(t *testing.T, handle string, spec sandbox.ProcessSpec, limit time.Duration) result {
	t.Helper()
	r := Run(t, s.d, handle, spec, limit)
	return result{r.Code, r.Stdout, r.Stderr}
}

// sh is the ProcessSpec of `sh -c script` in dir.
func sh(dir, script string) sandbox.ProcessSpec {
	return sandbox.ProcessSpec{Cmd: []string{"sh", "-c", script}, Dir: dir}
}

// waitProc waits for p for at most limit.
func waitProc(t testing.TB, p sandbox.Process, limit time.Duration) (int, error) {
	t.Helper()
	type res struct {
		code int
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		code, err := p.Wait()
		ch <- res{code, err}
	}()
	select {
	case r := <-ch:
		return r.code, r.err
	case <-time.After(limit):
		t.Fatalf("Wait did not return within %v (output held open by a background child must not keep Wait waiting)", limit)
		return 0, nil
	}
}

// tarEntry is one entry of a tar stream built by mkTar or read by readTar.
type tarEntry struct {
	Name string
	Type byte
	Mode int64 // permission bits
	Body string
	Link string
}

// mkTar returns a tar stream of entries (regular files when Type is 0; mode
// 0644 for files and 0755 for directories when Mode is 0).
func mkTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// readTar returns the entries of a tar stream (Mode holds the permission
// bits only).
func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		out = append(out, tarEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode & 0o7777, Body: string(body), Link: h.Linkname})
	}
}
