package gvisor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/driver/gvisor/gvisortest"
	"github.com/boxrun/boxrun/internal/chaostest"
	"github.com/boxrun/boxrun/internal/testenv"
)

// TestChaosServer is the server half of TestChaos: it runs only when
// started by it (a Manager over real gVisor in the directory it is given,
// served on loopback). runsc and the in-box helper come from the
// environment TestMain set up.
func TestChaosServer(t *testing.T) {
	dir := chaostest.ServerDir(t)
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithLimits(64, 64<<10),
		boxrun.WithImages(gvisortest.BusyboxStore{Image: boxruntest.BusyboxImage(t)}))
	if err != nil {
		t.Fatal(err)
	}
	chaostest.Serve(t, m)
}

// TestChaos is the crash suite over real gVisor: a server (Manager, HTTP
// API) under a mixed workload (creates, networked ones too, streaming
// execs, uploads, attach sessions, removes) is SIGKILLed at random
// moments (BOXRUN_CHAOS_KILLS times, default 3) and restarted; the
// restarted Manager's recovery (the driver's Prune) must leave no
// sandbox, runsc file or process, box directory, mount, loop device,
// cgroup, network namespace, host link or nftables table that the
// database does not know, besides the checks of package chaostest. At the
// end a final Prune of everything leaves nothing at all.
func TestChaos(t *testing.T) {
	testenv.NeedRoot(t)
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, err.Error())
	}
	boxruntest.BusyboxImage(t)
	dir := t.TempDir()
	scan := newHostScan(filepath.Join(dir, "gvisor"))
	stop := scan.watch()
	t.Cleanup(func() {
		stop()
		// Whatever the last server left goes with a Prune of everything.
		d, err := gvisor.New(gvisor.Config{Dir: scan.dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Prune(context.Background(), nil); err != nil {
			t.Errorf("final prune: %v", err)
		}
		d.Close()
		if left := scan.orphans(t, nil); len(left) > 0 {
			t.Errorf("left after the final prune: %q", left)
		}
		assertNothingLeft(t, scan.dir, scan.handles()...)
	})
	selfChecked := false
	fig := chaostest.Run(t, chaostest.Config{
		Server:    "TestChaosServer",
		Dir:       dir,
		KillAfter: [2]time.Duration{time.Second, 6 * time.Second},
		Workload: chaostest.Workload{
			Spec:         boxapi.BoxSpec{Image: "busybox", CPU: 1, MemoryMB: 256},
			NetworkEvery: 3,
			Attach:       true,
			Runs:         true,
			StopStart:    true,
			MaxBoxes:     4,
		},
		Orphans: func(known map[string]boxapi.BoxStatus) []string {
			if !selfChecked && scan.selfCheck(t, known) {
				selfChecked = true
			}
			return scan.orphans(t, known)
		},
		Settle: 30 * time.Second,
		Ready:  5 * time.Minute,
	})
	if fig.Ops.Creates == 0 {
		t.Errorf("the workload created no box: nothing was tested")
	}
	t.Logf("handles seen: %d", len(scan.handles()))
	if !selfChecked && !scan.selfCheck(t, chaostest.Handles(t, dir)) {
		t.Errorf("no check found a running box: the artifact scan was not checked")
	}
}

// selfCheck checks that the scan is not blind: with the database's
// knowledge taken away, it must find every kind of artifact of the boxes
// the database says are running (and the network ones together). It
// reports whether there was a running box to check with.
func (s *hostScan) selfCheck(t *testing.T, known map[string]boxapi.BoxStatus) bool {
	t.Helper()
	running := 0
	for _, st := range known {
		if st == boxapi.StatusRunning {
			running++
		}
	}
	kinds := map[string]int{}
	for _, a := range s.orphans(t, nil) {
		for _, k := range artifactKinds {
			if strings.HasPrefix(a, k+" ") {
				kinds[k]++
			}
		}
	}
	t.Logf("boxes %v; with no box known the scan finds %v", known, kinds)
	if running == 0 {
		return false
	}
	for _, k := range artifactKinds[:7] {
		if kinds[k] == 0 {
			t.Errorf("the scan finds no %s of the %d running boxes", k, running)
		}
	}
	if n := kinds["network namespace"]; n > 0 && (kinds["host link"] != n || kinds["nftables table"] != n) {
		t.Errorf("network artifacts of running boxes: %v, want as many of each", kinds)
	}
	return true
}

// artifactKinds are the kinds of artifacts hostScan.orphans reports (the
// first word(s) of each), those of every box first.
var artifactKinds = []string{"box directory", "runsc file", "runsc sandbox", "process", "mount", "loop device", "cgroup",
	"network namespace", "host link", "nftables table"}

// hostScan finds the host artifacts of the gVisor driver on dir. It
// remembers every handle it ever saw there (box directories, runsc files,
// processes), so that artifacts named only by a handle (cgroups, host
// links) can be told from those of other tests on the host.
type hostScan struct {
	dir string
	tag string // boxnet's tag for this driver directory

	seen handleSet
}

func newHostScan(dir string) *hostScan {
	sum := sha256.Sum256([]byte(dir))
	return &hostScan{dir: dir, tag: hex.EncodeToString(sum[:3])}
}

// watch records the box directories as they come, every 20 ms, until
// stop is called.
func (s *hostScan) watch() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			ents, _ := os.ReadDir(filepath.Join(s.dir, "boxes"))
			for _, e := range ents {
				s.see(e.Name())
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (s *hostScan) see(h string) {
	if !gvisor.ValidHandle(h) {
		return
	}
	s.seen.add(h)
}

func (s *hostScan) handles() []string { return s.seen.list() }

// owner returns the handle in known that s mentions, or "".
func owner(s string, known map[string]bool) string {
	for h := range known {
		if strings.Contains(s, h) {
			return h
		}
	}
	return ""
}

// orphans lists the driver's host artifacts that the database does not
// know: a box directory of no handle in boxes, anything else (runsc
// state, processes, mounts, loop devices, cgroups, network) of no running
// box in boxes (a stopped box keeps only its directory).
func (s *hostScan) orphans(t *testing.T, boxes map[string]boxapi.BoxStatus) []string {
	t.Helper()
	all, known := map[string]bool{}, map[string]bool{}
	for h, st := range boxes {
		s.see(h)
		all[h] = true
		if st == boxapi.StatusRunning || st == boxapi.StatusCreating {
			known[h] = true
		}
	}
	var out []string
	run := filepath.Join(s.dir, "run")
	// Box directories.
	ents, _ := os.ReadDir(filepath.Join(s.dir, "boxes"))
	for _, e := range ents {
		s.see(e.Name())
		if !all[e.Name()] {
			out = append(out, "box directory "+e.Name())
		}
	}
	// runsc's state: its files, and the sandboxes `runsc list` reports.
	ents, _ = os.ReadDir(run)
	for _, e := range ents {
		if e.Name() == "null-netns" {
			continue
		}
		if owner(e.Name(), known) == "" {
			out = append(out, "runsc file "+e.Name())
		}
	}
	if runsc := os.Getenv(gvisor.RunscEnv); runsc != "" {
		b, err := exec.Command(runsc, "--root="+run, "list", "--quiet").CombinedOutput()
		if err != nil && len(ents) > 0 {
			out = append(out, fmt.Sprintf("runsc list: %v: %s", err, b))
		}
		for id := range strings.FieldsSeq(string(b)) {
			if err == nil && owner(id, known) == "" {
				out = append(out, "runsc sandbox "+id)
			}
		}
	}
	// Processes (runsc, sandbox, gofer, mount helpers) of the directory.
	for _, p := range processesMentioning(t, s.dir) {
		for f := range strings.FieldsFuncSeq(p, func(r rune) bool { return r == ' ' || r == '/' || r == '=' || r == '_' }) {
			s.see(f)
		}
		if owner(p, known) == "" {
			out = append(out, "process "+p)
		}
	}
	// Mounts and loop devices.
	boxesDir := filepath.Join(s.dir, "boxes") + "/"
	for _, mp := range mountsUnder(t, s.dir) {
		if mp == filepath.Join(run, "null-netns") {
			continue
		}
		if h, _, _ := strings.Cut(strings.TrimPrefix(mp, boxesDir), "/"); !strings.HasPrefix(mp, boxesDir) || !known[h] {
			out = append(out, "mount "+mp)
		}
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range loops {
		b, err := os.ReadFile(f)
		backing := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if err != nil || !strings.HasPrefix(backing, s.dir+"/") {
			continue
		}
		if h, _, _ := strings.Cut(strings.TrimPrefix(backing, boxesDir), "/"); !strings.HasPrefix(backing, boxesDir) || !known[h] {
			out = append(out, fmt.Sprintf("loop device %s of %s", filepath.Base(filepath.Dir(filepath.Dir(f))), backing))
		}
	}
	// Cgroups and host links of every handle this test saw.
	links := map[string]bool{}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			links[i.Name] = true
		}
	}
	for _, h := range s.handles() {
		if known[h] {
			continue
		}
		cg, _ := filepath.Glob("/sys/fs/cgroup/boxrun/" + h)
		cg1, _ := filepath.Glob("/sys/fs/cgroup/*/boxrun/" + h)
		for _, c := range append(cg, cg1...) {
			out = append(out, "cgroup "+c)
		}
		if links["bx"+h[:13]] {
			out = append(out, "host link bx"+h[:13])
		}
	}
	// Network namespaces and nftables tables carry the directory's tag.
	ents, _ = os.ReadDir("/run/netns")
	for _, e := range ents {
		if id, ok := strings.CutPrefix(e.Name(), "boxrun-"+s.tag+"-"); ok {
			s.see(id)
			if !known[id] {
				out = append(out, "network namespace "+e.Name())
			}
		}
	}
	if b, err := exec.Command("nft", "list", "tables", "inet").CombinedOutput(); err == nil {
		for line := range strings.Lines(string(b)) {
			if id, ok := strings.CutPrefix(strings.TrimSpace(line), "table inet boxrun_"+s.tag+"_"); ok {
				s.see(id)
				if !known[id] {
					out = append(out, "nftables table "+strings.TrimSpace(line))
				}
			}
		}
	} else {
		out = append(out, fmt.Sprintf("nft list tables: %v: %s", err, b))
	}
	return out
}
