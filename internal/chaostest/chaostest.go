// Package chaostest is the crash suite's harness (make chaos; a short run
// in every `go test`): a real server process (a Manager and the HTTP API
// on loopback) under a mixed workload is SIGKILLed at random moments and
// restarted on the same state, and after every restart the state is
// checked: PRAGMA integrity_check is ok; every box reported running runs
// an exec; no exec is still running and every failed one has a reason; every output chunk the server
// acknowledged (streamed to a client) replays with its data, and an exec
// recorded as succeeded has its whole output; and no host
// artifact exists that the database does not know (Config.Orphans, the
// driver's part).
//
// A test using it has two halves in one test binary: the server half
// (a test that calls ServerDir, opens its Manager there and calls Serve)
// and the parent (Run), which starts the server half as a child process
// (package crashtest) and kills it.
package chaostest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/crashtest"
)

// DirEnv names the server's state directory in the environment of the
// child process that Run starts.
const DirEnv = "BOXRUN_CHAOS_DIR"

// KillsEnv overrides the default number of kills (make chaos sets 50).
const KillsEnv = "BOXRUN_CHAOS_KILLS"

// DefaultKills is the number of kills of a plain `go test` run.
const DefaultKills = 3

// ServerDir returns the state directory of the server half, or skips the
// test when it was not started by Run.
func ServerDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(DirEnv)
	if dir == "" {
		t.Skip("child process of a chaos test")
	}
	return dir
}

// Serve serves svc's HTTP API on a loopback port, prints "LISTEN <addr>"
// for Run, and serves until the process is killed.
func Serve(t *testing.T, svc boxapi.Service) {
	t.Helper()
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_ = httpapi.New(svc).Serve(context.Background(), ln)
}

// Config is one chaos test.
type Config struct {
	// Server is the name of the server half's test (run as a child with
	// DirEnv set).
	Server string
	// Env is added to the child's environment.
	Env []string
	// Dir is the server's state directory (it holds boxrun.db).
	Dir string
	// Kills is the number of kills; 0 reads KillsEnv, else DefaultKills.
	Kills int
	// KillAfter is the range of the random time between starting the
	// workload and the kill (default 100 ms to 1.6 s).
	KillAfter [2]time.Duration
	// Workload is what the clients do between kills.
	Workload Workload
	// Orphans lists the host artifacts of the server (sandboxes,
	// processes, mounts...) that the database does not know: known holds
	// the driver handles it records, with their box's status (see
	// Handles). nil checks nothing more.
	Orphans func(known map[string]boxapi.BoxStatus) []string
	// Settle is how long the artifacts may take to go after a restart
	// (Orphans is polled until it lists nothing; default 30 s).
	Settle time.Duration
	// Ready is how long a server may take to listen (default 2 min).
	Ready time.Duration
}

// Figures are what Run measured.
type Figures struct {
	Kills, StartupKills, Restarts, IntegrityBad, Orphans, Running, FailedNoReason, LostChunks, CheckedChunks int
	// DeadBoxes counts boxes reported running after a restart that did
	// not run an exec.
	DeadBoxes int
	// CheckedWhole counts the workload's succeeded execs whose whole
	// output was checked, BadOutput those whose output was not whole.
	CheckedWhole, BadOutput int
	// MaxSettle is the longest a check waited for Orphans to come clean.
	MaxSettle time.Duration
	// MaxRestart is the longest a restarted server took to listen.
	MaxRestart time.Duration
	// Ops counts the workload's acknowledged operations.
	Ops Ops
}

// Problems is the number of failures among the figures.
func (f Figures) Problems() int {
	return f.IntegrityBad + f.Orphans + f.Running + f.FailedNoReason + f.LostChunks + f.DeadBoxes + f.BadOutput
}

// Table formats the figures as a two-line table.
func (f Figures) Table() string {
	itoa := strconv.Itoa
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	cols := []struct{ name, val string }{
		{"kills", itoa(f.Kills)}, {"startup_kills", itoa(f.StartupKills)}, {"restarts", itoa(f.Restarts)},
		{"integrity_bad", itoa(f.IntegrityBad)}, {"orphans", itoa(f.Orphans)}, {"dead_boxes", itoa(f.DeadBoxes)},
		{"exec_running", itoa(f.Running)}, {"failed_noreason", itoa(f.FailedNoReason)},
		{"chunks_checked", itoa(f.CheckedChunks)}, {"chunks_lost", itoa(f.LostChunks)},
		{"whole_checked", itoa(f.CheckedWhole)}, {"not_whole", itoa(f.BadOutput)},
		{"max_restart", ms(f.MaxRestart)}, {"max_settle", ms(f.MaxSettle)},
		{"creates", i64(f.Ops.Creates)}, {"net_creates", i64(f.Ops.NetCreates)}, {"runs", i64(f.Ops.Runs)},
		{"execs", i64(f.Ops.Execs)}, {"uploads", i64(f.Ops.Uploads)}, {"attaches", i64(f.Ops.Attaches)}, {"box_restarts", i64(f.Ops.Restarts)},
		{"removes", i64(f.Ops.Removes)},
	}
	var a, b strings.Builder
	for _, c := range cols {
		w := max(len(c.name), len(c.val)) + 1
		fmt.Fprintf(&a, "%-*s", w, c.name)
		fmt.Fprintf(&b, "%-*s", w, c.val)
	}
	return strings.TrimRight(a.String(), " ") + "\n" + strings.TrimRight(b.String(), " ")
}

// server is one server process.
type server struct {
	child *crashtest.Child
	c     *client.Client
}

func start(t *testing.T, cfg *Config) *server {
	t.Helper()
	child := crashtest.Start(t, cfg.Server, append([]string{DirEnv + "=" + cfg.Dir}, cfg.Env...))
	f := child.MustAwait(t, "the server", "LISTEN", 2, cfg.Ready)
	c, err := client.New("http://" + f[1])
	if err != nil {
		child.Kill()
		t.Fatal(err)
	}
	return &server{child: child, c: c}
}

// Run runs the chaos test cfg: it starts the server, and Kills times runs
// the workload against it, SIGKILLs it at a random moment, checks the
// database file, restarts the server (on one restart in three killing it
// once more during its recovery) and checks its state (see the package
// doc). It logs the figures as a table, fails t on any problem,
// and returns the figures with the last server killed.
func Run(t *testing.T, cfg Config) Figures {
	t.Helper()
	if cfg.Kills == 0 {
		cfg.Kills = DefaultKills
		if v := os.Getenv(KillsEnv); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q", KillsEnv, v)
			}
			cfg.Kills = n
		}
	}
	if cfg.KillAfter == [2]time.Duration{} {
		cfg.KillAfter = [2]time.Duration{100 * time.Millisecond, 1600 * time.Millisecond}
	}
	if cfg.Settle == 0 {
		cfg.Settle = 30 * time.Second
	}
	if cfg.Ready == 0 {
		cfg.Ready = 2 * time.Minute
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ack := newAcked()
	var fig Figures
	db := filepath.Join(cfg.Dir, "boxrun.db")
	began := time.Now()
	srv := start(t, &cfg)
	lastRestart := time.Since(began)
	for range cfg.Kills {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		wseed := rng.Uint64()
		var ops opCounts
		go func() { defer close(done); cfg.Workload.run(ctx, srv.c, wseed, ack, &ops) }()
		time.Sleep(randIn(rng, cfg.KillAfter))
		srv.child.Kill()
		fig.Kills++
		cancel()
		<-done
		ops.addTo(&fig.Ops)
		srv.c.Close()
		if s := Integrity(t, db); s != "ok" {
			fig.IntegrityBad++
			t.Errorf("integrity_check after kill %d: %q", fig.Kills, s)
		}
		if rng.IntN(3) == 0 {
			// A kill in the middle of the restart's recovery: at a random
			// moment of the time the last restart took to listen.
			child := crashtest.Start(t, cfg.Server, append([]string{DirEnv + "=" + cfg.Dir}, cfg.Env...))
			time.Sleep(randIn(rng, [2]time.Duration{0, lastRestart}))
			child.Kill()
			fig.StartupKills++
			if s := Integrity(t, db); s != "ok" {
				fig.IntegrityBad++
				t.Errorf("integrity_check after the startup kill after kill %d: %q", fig.Kills, s)
			}
		}
		began := time.Now()
		srv = start(t, &cfg)
		lastRestart = time.Since(began)
		fig.MaxRestart = max(fig.MaxRestart, lastRestart)
		fig.Restarts++
		check(t, &cfg, srv.c, ack, &fig)
	}
	srv.child.Kill()
	srv.c.Close()
	t.Logf("\n%s", fig.Table())
	if fig.Problems() > 0 {
		t.Errorf("chaos found problems (table above)")
	}
	return fig
}

// randIn returns a random duration in r.
func randIn(rng *rand.Rand, r [2]time.Duration) time.Duration {
	return r[0] + time.Duration(rng.Int64N(int64(r[1]-r[0])+1))
}
