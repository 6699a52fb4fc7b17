package boxrun_test

// The crash suite over the fake driver (make chaos; a short run in every
// `go test`): see internal/chaostest. The gVisor one is driver/gvisor's
// TestChaos.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/internal/chaostest"
)

// TestChaosServer is the server half of TestChaos: it runs only when
// started by it (a Manager over the fake driver, served on loopback).
func TestChaosServer(t *testing.T) {
	dir := chaostest.ServerDir(t)
	chaostest.Serve(t, boxruntest.OpenManager(t, dir, boxrun.WithLimits(1024, 1<<20)))
}

// TestChaos SIGKILLs the server at random moments of a mixed workload
// (BOXRUN_CHAOS_KILLS times, default 3; `make chaos` uses 50) and checks
// after every restart what package chaostest checks, and that no box
// directory or box process of the fake driver exists that the database
// does not know.
func TestChaos(t *testing.T) {
	dir := t.TempDir()
	chaostest.Run(t, chaostest.Config{
		Server:   "TestChaosServer",
		Dir:      dir,
		Workload: chaostest.Workload{Spec: boxapi.BoxSpec{Image: "busybox", CPU: 1, MemoryMB: 64}, Attach: true, Runs: true, StopStart: true},
		Orphans:  func(known map[string]boxapi.BoxStatus) []string { return fakeOrphans(dir, known) },
	})
}

// fakeOrphans lists the fake driver's box directories and box processes
// under dir whose handle is not in known.
func fakeOrphans(dir string, known map[string]boxapi.BoxStatus) []string {
	var out []string
	if ents, err := os.ReadDir(filepath.Join(dir, "fake", "boxes")); err == nil {
		for _, e := range ents {
			if known[e.Name()] == "" {
				out = append(out, "box directory "+e.Name())
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		env, err := os.ReadFile("/proc/" + p.Name() + "/environ")
		if err != nil {
			continue
		}
		// Box processes of this test run in (or under) its directory.
		if cwd, err := os.Readlink("/proc/" + p.Name() + "/cwd"); err != nil || !strings.HasPrefix(cwd, dir) {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if h, ok := bytes.CutPrefix(kv, []byte("BOXRUNTEST_FAKE_BOX=")); ok && known[string(h)] == "" {
				out = append(out, fmt.Sprintf("process %s of box %s", p.Name(), h))
			}
		}
	}
	return out
}
