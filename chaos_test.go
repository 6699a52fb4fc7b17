package boxrun_test

// The crash suite (make chaos; a short run in every `go test`): a real
// server process (Manager + HTTP API, over the fake driver's host
// processes) under a mixed workload is SIGKILLed at random moments and
// restarted, and after every kill the state is checked.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestChaosServer is the server half of TestChaos: it runs only when
// started by it, serves the API on loopback and prints its address.
func TestChaosServer(t *testing.T) {
	dir := os.Getenv("BOXRUN_CHAOS_DIR")
	if dir == "" {
		t.Skip("child process of TestChaos")
	}
	m := boxruntest.OpenManager(t, dir, boxrun.WithLimits(1024, 1<<20))
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	_ = httpapi.New(m).Serve(context.Background(), ln)
}

// chaosServer is one server process.
type chaosServer struct {
	cmd *exec.Cmd
	c   *client.Client
}

func startChaosServer(t *testing.T, dir string) *chaosServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosServer$")
	cmd.Env = append(os.Environ(), "BOXRUN_CHAOS_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			cmd.Wait()
			t.Fatal("server exited before listening (a failed restart)")
		}
		c, err := client.New("http://" + a)
		if err != nil {
			t.Fatal(err)
		}
		return &chaosServer{cmd: cmd, c: c}
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		t.Fatal("server never listened")
	}
	return nil
}

// acked records what the server acknowledged: output chunks streamed to the
// client (published only after they are stored) by exec.
type acked struct {
	mu     sync.Mutex
	chunks map[string]map[int64]string // exec ID → seq → data
}

func (a *acked) add(execID string, seq int64, data string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.chunks[execID] == nil {
		a.chunks[execID] = map[int64]string{}
	}
	a.chunks[execID][seq] = data
}

// chaosWorkload runs a mix of creates, streaming execs, uploads and removes
// against c until ctx ends.
func chaosWorkload(ctx context.Context, c *client.Client, seed uint64, ack *acked) {
	rng := rand.New(rand.NewPCG(seed, 2))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var boxes []string
	for w := range 3 {
		seed := rng.Uint64()
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for ctx.Err() == nil {
				mu.Lock()
				n := len(boxes)
				var box string
				if n > 0 {
					box = boxes[r.IntN(n)]
				}
				mu.Unlock()
				switch op := r.IntN(10); {
				case op < 2 || box == "":
					if b, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox", CPU: 1, MemoryMB: 64}); err == nil {
						mu.Lock()
						boxes = append(boxes, b.ID)
						mu.Unlock()
					}
				case op < 7:
					script := `i=0; while [ $i -lt 3000 ]; do echo "chunk $i"; i=$((i+1)); done`
					e, err := c.StartExec(ctx, box, boxapi.ExecRequest{Cmd: []string{"sh", "-c", script}})
					if err != nil {
						continue
					}
					_ = c.ExecEvents(ctx, e.ID, -1, func(ev boxapi.ExecEvent) error {
						if ev.Kind == boxapi.KindLog {
							ack.add(e.ID, ev.Seq, ev.Data)
						}
						return nil
					})
				case op < 9:
					_ = c.UploadFile(ctx, box, "/tmp/up"+strconv.Itoa(r.IntN(5)), bytes.NewReader(bytes.Repeat([]byte("u"), 64<<10)))
				default:
					if c.Remove(ctx, box, true) == nil {
						mu.Lock()
						for i, id := range boxes {
							if id == box {
								boxes = append(boxes[:i], boxes[i+1:]...)
								break
							}
						}
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
}

// chaosFigures are what TestChaos prints.
type chaosFigures struct {
	kills, restarts, integrityBad, orphans, running, failedNoReason, lostChunks, checkedChunks int
}

// TestChaos SIGKILLs the server at random moments of a mixed workload
// (BOXRUN_CHAOS_KILLS times, default 3; `make chaos` uses 50) and checks
// after every restart: PRAGMA integrity_check is ok; no box directory or
// process exists that the database does not know; no exec is still
// running, and every failed one has a reason; every output chunk the
// server acknowledged (streamed to the client) is replayed with its data.
func TestChaos(t *testing.T) {
	kills := 3
	if v := os.Getenv("BOXRUN_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("BOXRUN_CHAOS_KILLS=%q", v)
		}
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	ack := &acked{chunks: map[string]map[int64]string{}}
	var fig chaosFigures
	srv := startChaosServer(t, dir)
	for range kills {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		wseed := rng.Uint64()
		go func() { defer close(done); chaosWorkload(ctx, srv.c, wseed, ack) }()
		time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
		if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = srv.cmd.Wait()
		fig.kills++
		cancel()
		<-done
		srv.c.Close()
		if s := integrity(t, filepath.Join(dir, "boxrun.db")); s != "ok" {
			fig.integrityBad++
			t.Errorf("integrity_check after kill %d: %q", fig.kills, s)
		}
		srv = startChaosServer(t, dir)
		fig.restarts++
		chaosCheck(t, dir, srv.c, ack, &fig)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	_ = srv.cmd.Wait()
	srv.c.Close()
	t.Logf("\n%-10s %-8s %-14s %-8s %-14s %-16s %-14s %-12s\n%-10d %-8d %-14d %-8d %-14d %-16d %-14d %-12d",
		"kills", "restarts", "integrity_bad", "orphans", "exec_running", "failed_noreason", "chunks_checked", "chunks_lost",
		fig.kills, fig.restarts, fig.integrityBad, fig.orphans, fig.running, fig.failedNoReason, fig.checkedChunks, fig.lostChunks)
	if fig.orphans+fig.running+fig.failedNoReason+fig.lostChunks+fig.integrityBad > 0 {
		t.Errorf("chaos found problems (table above)")
	}
}

func integrity(t *testing.T, db string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var s string
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check;", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { s += stmt.ColumnText(0); return nil },
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// chaosCheck checks the restarted server's state (see TestChaos).
func chaosCheck(t *testing.T, dir string, c *client.Client, ack *acked, fig *chaosFigures) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	boxes, err := c.List(ctx, boxapi.BoxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// Box directories and marked processes the database does not know.
	handles := map[string]bool{}
	conn, err := sqlite.OpenConn(filepath.Join(dir, "boxrun.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	_ = sqlitex.ExecuteTransient(conn, "SELECT boxlite_id FROM boxes WHERE boxlite_id IS NOT NULL;", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { handles[stmt.ColumnText(0)] = true; return nil },
	})
	conn.Close()
	if ents, err := os.ReadDir(filepath.Join(dir, "fake", "boxes")); err == nil {
		for _, e := range ents {
			if !handles[e.Name()] {
				fig.orphans++
				t.Errorf("box directory %s unknown to the database", e.Name())
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
			if h, ok := bytes.CutPrefix(kv, []byte("BOXRUNTEST_FAKE_BOX=")); ok && !handles[string(h)] {
				fig.orphans++
				t.Errorf("process %s of unknown box %s", p.Name(), h)
			}
		}
	}
	known := map[string]bool{}
	for _, b := range boxes {
		known[b.ID] = true
		execs, err := c.ListExecs(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range execs {
			switch {
			case e.Status == boxapi.ExecRunning:
				fig.running++
				t.Errorf("exec %s still running after the restart", e.ID)
			case e.Status == boxapi.ExecFailed && e.ErrorMessage == "":
				fig.failedNoReason++
				t.Errorf("exec %s failed without a reason", e.ID)
			}
		}
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for execID, chunks := range ack.chunks {
		got := map[int64]string{}
		err := c.ExecEvents(ctx, execID, -1, func(ev boxapi.ExecEvent) error {
			if ev.Kind == boxapi.KindLog {
				got[ev.Seq] = ev.Data
			}
			return nil
		})
		if boxapi.ErrorCode(err) == boxapi.CodeExecNotFound || boxapi.ErrorCode(err) == boxapi.CodeBoxNotFound {
			delete(ack.chunks, execID) // its box was removed
			continue
		}
		if err != nil {
			t.Fatalf("replay %s: %v", execID, err)
		}
		for seq, data := range chunks {
			fig.checkedChunks++
			if got[seq] != data {
				fig.lostChunks++
				t.Errorf("exec %s: acknowledged chunk %d %q replays as %q", execID, seq, data, got[seq])
			}
		}
		delete(ack.chunks, execID) // checked once: it is finished now
	}
}
