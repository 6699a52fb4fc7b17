package chaostest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
)

// Workload is what the clients do between kills: Workers clients loop
// over random operations on random boxes until the kill: creates (of
// Spec; every NetworkEvery-th one networked) or one-shot runs (Runs),
// streaming execs whose
// output chunks are recorded as acknowledged, uploads, attach sessions
// over the WebSocket (Attach), box restarts (StopStart) and removes. The boxes of earlier rounds
// (the server's list) are used too; at MaxBoxes a create becomes a remove.
type Workload struct {
	// Spec is the spec of created boxes (Image is required).
	Spec boxapi.BoxSpec
	// NetworkEvery makes every n-th create a networked box (0: none).
	NetworkEvery int
	// Attach adds attach sessions to the mix.
	Attach bool
	// Runs makes one create in three a one-shot run (its own box,
	// removed when the command ends) instead.
	Runs bool
	// StopStart adds box restarts (stop, then start) to the mix.
	StopStart bool
	// MaxBoxes bounds the boxes the workload keeps (default 8).
	MaxBoxes int
	// Workers is the number of concurrent clients (default 3).
	Workers int
	// Lines is the number of output lines of each exec (default 1000).
	Lines int
}

// Ops counts the operations the server acknowledged (the call returned
// without error).
type Ops struct {
	Creates, NetCreates, Runs, Execs, Uploads, Attaches, Restarts, Removes int64
}

// opCounts is Ops as the workload's clients count them.
type opCounts struct {
	creates, netCreates, runs, execs, uploads, attaches, restarts, removes atomic.Int64
}

// addTo adds the counts to o.
func (c *opCounts) addTo(o *Ops) {
	o.Creates += c.creates.Load()
	o.NetCreates += c.netCreates.Load()
	o.Runs += c.runs.Load()
	o.Execs += c.execs.Load()
	o.Uploads += c.uploads.Load()
	o.Attaches += c.attaches.Load()
	o.Restarts += c.restarts.Load()
	o.Removes += c.removes.Load()
}

// acked records what the server acknowledged: output chunks streamed to a
// client (published only after they are stored), by exec.
type acked struct {
	mu     sync.Mutex
	chunks map[string]map[int64]string // exec ID → seq → data
	whole  map[string]bool             // succeeded execs whose whole output was checked
}

func newAcked() *acked {
	return &acked{chunks: map[string]map[int64]string{}, whole: map[string]bool{}}
}

func (a *acked) add(execID string, seq int64, data string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.chunks[execID] == nil {
		a.chunks[execID] = map[int64]string{}
	}
	a.chunks[execID][seq] = data
}

// boxSet is the workload's boxes, shared by its clients.
type boxSet struct {
	mu  sync.Mutex
	ids []string
	n   int // creates started, for NetworkEvery
}

func (s *boxSet) pick(r *rand.Rand) (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return "", 0
	}
	return s.ids[r.IntN(len(s.ids))], len(s.ids)
}

func (s *boxSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
}

func (s *boxSet) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.ids, id); i >= 0 {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
}

func (s *boxSet) nextCreate() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}

// withDefaults is w with its defaults filled in.
func (w Workload) withDefaults() Workload {
	if w.MaxBoxes == 0 {
		w.MaxBoxes = 8
	}
	if w.Workers == 0 {
		w.Workers = 3
	}
	if w.Lines == 0 {
		w.Lines = 1000
	}
	return w
}

// script is the shell script of the workload's execs: "chunk 0" to
// "chunk <Lines-1>", a line each, in bursts of 50 lines 50 ms apart (many
// chunks, and a kill often finds an exec streaming).
func (w Workload) script() string {
	return `i=0; while [ $i -lt ` + strconv.Itoa(w.Lines) + ` ]; do echo "chunk $i"; i=$((i+1)); [ $((i%50)) = 0 ] && sleep 0.05; done; true`
}

// output is the whole output of script.
func (w Workload) output() string {
	var b strings.Builder
	for i := range w.Lines {
		fmt.Fprintf(&b, "chunk %d\n", i)
	}
	return b.String()
}

// run runs the workload against c until ctx ends.
func (w Workload) run(ctx context.Context, c *client.Client, seed uint64, ack *acked, ops *opCounts) {
	w = w.withDefaults()
	boxes := &boxSet{}
	if list, err := c.List(ctx, boxapi.BoxFilter{}); err == nil {
		for _, b := range list {
			boxes.add(b.ID)
		}
	}
	script := w.script()
	rng := rand.New(rand.NewPCG(seed, 2))
	var wg sync.WaitGroup
	for i := range w.Workers {
		seed := rng.Uint64()
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for ctx.Err() == nil {
				w.step(ctx, c, r, boxes, script, ack, ops)
			}
		})
	}
	wg.Wait()
}

// The operations of the mix, each drawn with its weight.
const (
	opCreate  = iota // or a one-shot run
	opExec           // a streaming exec
	opUpload         // a 64 KiB file
	opAttach         // an attach session (an exec without Attach)
	opRestart        // stop then start (an exec without StopStart)
	opRemove         // forced
)

var opWeights = [...]int{opCreate: 2, opExec: 5, opUpload: 2, opAttach: 2, opRestart: 1, opRemove: 1}

// pickOp draws an operation by its weight.
func pickOp(r *rand.Rand) int {
	total := 0
	for _, w := range opWeights {
		total += w
	}
	n := r.IntN(total)
	for op, w := range opWeights {
		if n < w {
			return op
		}
		n -= w
	}
	return opExec
}

// step does one random operation of the mix.
func (w Workload) step(ctx context.Context, c *client.Client, r *rand.Rand, boxes *boxSet, script string, ack *acked, ops *opCounts) {
	box, n := boxes.pick(r)
	op := pickOp(r)
	switch {
	case box == "":
		op = opCreate
	case op == opCreate && n >= w.MaxBoxes:
		op = opRemove
	case op == opAttach && !w.Attach, op == opRestart && !w.StopStart:
		op = opExec
	}
	switch op {
	case opCreate:
		if w.Runs && r.IntN(3) == 0 {
			res, err := c.Run(ctx, boxapi.RunRequest{Image: w.Spec.Image, CPU: w.Spec.CPU, MemoryMB: w.Spec.MemoryMB,
				Cmd: []string{"sh", "-c", "echo ran; sleep 0.2"}})
			if err == nil && res.ExitCode != nil && *res.ExitCode == 0 && res.Stdout == "ran\n" {
				ops.runs.Add(1)
			}
			return
		}
		spec := w.Spec
		if w.NetworkEvery > 0 && boxes.nextCreate()%w.NetworkEvery == 0 {
			spec.Network = true
		}
		if b, err := c.Create(ctx, spec); err == nil {
			ops.creates.Add(1)
			if spec.Network {
				ops.netCreates.Add(1)
			}
			boxes.add(b.ID)
		}
	case opExec:
		e, err := c.StartExec(ctx, box, boxapi.ExecRequest{Cmd: []string{"sh", "-c", script}})
		if err != nil {
			return
		}
		err = c.ExecEvents(ctx, e.ID, -1, func(ev boxapi.ExecEvent) error {
			if ev.Kind == boxapi.KindLog {
				ack.add(e.ID, ev.Seq, ev.Data)
			}
			return nil
		})
		if err == nil {
			ops.execs.Add(1)
		}
	case opUpload:
		err := c.UploadFile(ctx, box, "/tmp/up"+strconv.Itoa(r.IntN(5)), bytes.NewReader(bytes.Repeat([]byte("u"), 64<<10)))
		if err == nil {
			ops.uploads.Add(1)
		}
	case opAttach:
		var out bytes.Buffer
		code, err := c.Attach(ctx, box, boxapi.AttachRequest{Stdin: strings.NewReader("echo attached\nexit\n"), Stdout: &out})
		if err == nil && code == 0 && strings.Contains(out.String(), "attached") {
			ops.attaches.Add(1)
		}
	case opRestart:
		if _, err := c.Stop(ctx, box); err != nil {
			return
		}
		if _, err := c.Start(ctx, box); err == nil {
			ops.restarts.Add(1)
		}
	case opRemove:
		if c.Remove(ctx, box, true) == nil {
			ops.removes.Add(1)
			boxes.remove(box)
		}
	}
}
