package boxrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/boxrun/boxrun/sandbox"
)

// maxPendingOutput bounds the output an exec may have buffered but not yet
// stored; a process that outpaces the store waits (output is never dropped).
const maxPendingOutput = 8 << 20

// maxEventData is the most text consecutive writes of one stream are
// merged into while the store is busy (one event, one record).
const maxEventData = 64 << 10

func validateExec(req *ExecRequest) error {
	switch {
	case len(req.Cmd) == 0:
		return invalid("cmd must be a non-empty list")
	case req.Workdir != "" && !strings.HasPrefix(req.Workdir, "/"):
		return invalid("workdir must be an absolute path (starting with /)")
	case req.TimeoutMS < 0:
		return invalid("timeout_ms must be positive")
	case req.OutputLimit < 0:
		return invalid("output_limit must be positive")
	}
	return nil
}

// StartExec starts a command in a running box and returns its record
// (status running) at once. The command runs in the background: its output
// is stored as numbered events (see ExecEvents) and its record finishes as
// succeeded, failed (non-zero exit, timeout) or canceled. Errors:
// VALIDATION_ERROR, BOX_NOT_FOUND, BOX_NOT_RUNNING, RUNTIME_ERROR (the
// command could not start; the exec is then recorded as failed).
func (m *Manager) StartExec(ctx context.Context, box string, req ExecRequest) (*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	r, err := m.startExec(ctx, box, req, nil, nil)
	if err != nil {
		return nil, err
	}
	e := *r.exec
	return &e, nil
}

// Exec runs a command to completion. Output goes to stdout and stderr (raw
// bytes, either may be nil) as it arrives, and is stored like StartExec's.
// Canceling ctx cancels the exec. A non-zero exit is not an error: read the
// returned record's Status and ExitCode.
func (m *Manager) Exec(ctx context.Context, box string, req ExecRequest, stdout, stderr io.Writer) (*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	r, err := m.startExec(ctx, box, req, stdout, stderr)
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.kill(ExecCanceled, "")
		<-r.done
		return r.final, ctx.Err()
	}
	return r.final, nil
}

func (m *Manager) startExec(ctx context.Context, box string, req ExecRequest, stdout, stderr io.Writer) (*execRun, error) {
	if err := validateExec(&req); err != nil {
		return nil, err
	}
	// The box lock is held until the process has started (or failed to):
	// a concurrent Stop or Remove either comes first (and this sees the box
	// stopped or gone) or finds the exec registered and cancels it.
	b, unlock, err := m.getLocked(ctx, box)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := m.resumeLocked(ctx, b); err != nil { // a hibernated box wakes up
		return nil, err
	}
	if b.Status != StatusRunning {
		return nil, Errorf(CodeBoxNotRunning, "Box '%s' is not running", box)
	}
	if b.Handle == "" {
		return nil, Errorf(CodeRuntimeError, "Box has no BoxLite ID")
	}
	e := &Exec{
		ID: newID("exec_"), BoxID: b.ID, Status: ExecRunning, Cmd: req.Cmd, Env: req.Env,
		Workdir: req.Workdir, TimeoutMS: req.TimeoutMS, CreatedAt: m.now(),
	}
	r := newExecRun(m, e, map[string]io.Writer{"stdout": stdout, "stderr": stderr})
	r.limit = m.cfg.outputLimit
	if req.OutputLimit > 0 && (r.limit <= 0 || req.OutputLimit < r.limit) {
		r.limit = req.OutputLimit
	}
	logPath := outLogPath(m.outDir, e.ID)
	lg, err := createOutLog(logPath)
	if err != nil {
		return nil, Errorf(CodeRuntimeError, "Failed to start execution: %w", err)
	}
	r.log = lg
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		lg.discard()
		os.Remove(logPath)
		return nil, ErrClosed
	}
	m.runs[e.ID] = r
	m.wg.Add(1)
	m.mu.Unlock()
	m.beginBusy(b.ID) // ended by finish (or below)

	ev, err := m.store.insertExec(ctx, e)
	if err != nil {
		lg.discard()
		os.Remove(logPath)
		m.mu.Lock()
		delete(m.runs, e.ID)
		m.mu.Unlock()
		m.endBusy(b.ID)
		m.wg.Done()
		return nil, err
	}
	m.bus.publish(ev)
	go r.flusher()

	dir := req.Workdir
	if dir == "" {
		dir = b.Workdir
	}
	proc, err := m.driver.Exec(m.ctx, b.Handle, sandbox.ProcessSpec{
		Cmd: req.Cmd, Env: envList(req.Env), Dir: dir, Stdin: req.Stdin,
		Stdout: r.writer("stdout"), Stderr: r.writer("stderr"),
	})
	if err != nil {
		startErr := Errorf(CodeRuntimeError, "Failed to start execution: %w", err)
		go r.finish(nil, startErr.Message)
		<-r.done
		return nil, startErr
	}
	r.started(proc)
	go r.pump()
	return r, nil
}

// execRun is a running exec: it turns output into stored, published events
// and finishes the record when the process ends.
type execRun struct {
	m    *Manager
	exec *Exec
	tee  map[string]io.Writer
	done chan struct{} // closed once final is stored
	fin  sync.Once

	mu        sync.Mutex
	cond      *sync.Cond // signaled when pending output is taken for storage
	proc      sandbox.Process
	seq       int64
	pending   []pendingChunk
	pendBytes int
	limit     int64 // the output cap of this exec (0: none)
	queued    int64 // output bytes accepted for storage (the cap counts these)
	truncated bool  // the output cap was hit: the rest is dropped
	storeErr  error // storing output failed: the exec fails, nothing more is stored
	log       *outLog
	written   atomic.Int64      // end of the last whole batch in the log
	lastSeq   int64             // seq of the last stored output event
	carry     map[string][]byte // incomplete UTF-8 tail per stream
	endStatus ExecStatus        // set by kill: canceled or failed
	endReason string
	timedOut  bool
	timer     *time.Timer
	final     *Exec
	ended     bool // finish has begun: later output is discarded

	wake    chan struct{} // nudges the flusher
	flushed chan struct{} // closed when the flusher has stored everything
	stop    chan struct{} // closed when no more output will come
}

func newExecRun(m *Manager, e *Exec, tee map[string]io.Writer) *execRun {
	r := &execRun{
		m: m, exec: e, tee: tee, done: make(chan struct{}), carry: map[string][]byte{}, lastSeq: -1,
		wake: make(chan struct{}, 1), flushed: make(chan struct{}), stop: make(chan struct{}),
	}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *execRun) started(p sandbox.Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proc = p
	if r.exec.TimeoutMS > 0 {
		r.timer = time.AfterFunc(time.Duration(r.exec.TimeoutMS)*time.Millisecond, func() {
			r.mu.Lock()
			r.timedOut = r.endStatus == ""
			r.mu.Unlock()
			r.signal()
		})
	}
	if r.endStatus != "" { // killed before the process started
		go r.signal()
	}
}

// kill ends the exec with status (canceled, or failed on shutdown) and reason.
func (r *execRun) kill(status ExecStatus, reason string) {
	r.mu.Lock()
	if r.endStatus == "" && !r.timedOut {
		r.endStatus, r.endReason = status, reason
	}
	r.mu.Unlock()
	r.signal()
}

func (r *execRun) signal() {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Signal(ctx, syscall.SIGKILL); err != nil {
			r.m.log.Debug("exec: kill", "exec", r.exec.ID, "err", err)
		}
	}
}

type streamWriter struct {
	r      *execRun
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) { return w.r.write(w.stream, p) }

func (r *execRun) writer(stream string) io.Writer { return streamWriter{r, stream} }

// write turns a chunk of output into an event. The event keeps the raw
// bytes (invalid UTF-8 included: byte-exact clients read them through the
// base64 encoding of the events stream, text clients get them made valid at
// the edge). Bytes of a UTF-8 sequence split across writes are held back
// until the sequence is complete, so text clients never see a character cut
// in two.
func (r *execRun) write(stream string, p []byte) (int, error) {
	if w := r.tee[stream]; w != nil {
		_, _ = w.Write(p) // the caller's writer; its errors are its own
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.storeErr != nil || r.truncated {
		// Finished without its process (Close), unstorable, or over the
		// cap: the output goes nowhere.
		return len(p), nil
	}
	buf := p // the caller's: queue copies what it keeps
	if c := r.carry[stream]; len(c) > 0 {
		buf = append(c, p...)
		r.carry[stream] = nil
	}
	cut := utf8Complete(buf)
	if cut < len(buf) {
		r.carry[stream] = append([]byte(nil), buf[cut:]...)
	}
	if cut > 0 {
		r.queue(stream, buf[:cut])
	}
	for r.pendBytes > maxPendingOutput {
		r.cond.Wait()
	}
	return len(p), nil
}

// pendingChunk is output queued for storage: one future event.
type pendingChunk struct {
	seq    int64
	stream string
	at     time.Time
	data   []byte
	own    bool // never merged into (the truncation marker)
}

// queue appends output text as a log event, merging it into the last
// queued event of the same stream while the store is busy (r.mu held).
// Past the output cap it queues the part that fits, then a truncation
// marker (a stderr log event), and drops the rest.
func (r *execRun) queue(stream string, text []byte) {
	if r.truncated {
		return
	}
	if limit := r.limit; limit > 0 && r.queued+int64(len(text)) > limit {
		fit := int(limit - r.queued)
		for back := 0; back < utf8.UTFMax && fit > 0 && !utf8.RuneStart(text[fit]); back++ {
			fit-- // do not cut a character in two
		}
		r.add(stream, text[:fit], false)
		r.add("stderr", []byte(TruncationMarker(limit)), true)
		r.truncated = true
		return
	}
	r.add(stream, text, false)
}

// add copies text into the pending output (r.mu held).
func (r *execRun) add(stream string, text []byte, own bool) {
	if len(text) == 0 {
		return
	}
	r.queued += int64(len(text))
	r.pendBytes += len(text)
	if n := len(r.pending); !own && n > 0 {
		if last := &r.pending[n-1]; !last.own && last.stream == stream && len(last.data)+len(text) <= maxEventData {
			last.data = append(last.data, text...)
			return
		}
	}
	r.pending = append(r.pending, pendingChunk{seq: r.seq, stream: stream, at: r.m.now(), data: append([]byte(nil), text...), own: own})
	r.seq++
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// utf8Complete returns the length of the longest prefix of b that does not
// end inside an incomplete UTF-8 sequence.
func utf8Complete(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// flusher stores pending output in batches (one write to the exec's log)
// and publishes each batch once it is stored, in seq order, until stop.
// A batch that cannot be stored fails the exec and is never published.
func (r *execRun) flusher() {
	defer close(r.flushed)
	for {
		select {
		case <-r.wake:
		case <-r.stop:
			return
		}
		if batch := r.takePending(); len(batch) > 0 && r.store(batch) {
			r.publishOutput(batch)
		}
	}
}

// store appends batch to the log; on failure it fails the exec (killing
// its process) and reports false.
func (r *execRun) store(batch []ExecEvent) bool {
	r.mu.Lock()
	failed := r.storeErr != nil
	r.mu.Unlock()
	if failed {
		return false
	}
	off, err := r.log.append(batch)
	if err == nil {
		r.written.Store(off)
		r.lastSeq = batch[len(batch)-1].Seq
		return true
	}
	r.m.log.Error("exec: store output", "exec", r.exec.ID, "err", err)
	r.mu.Lock()
	r.storeErr = err
	r.endStatus, r.endReason = ExecFailed, "output storage failed: "+err.Error()
	r.pending, r.pendBytes = nil, 0
	r.cond.Broadcast()
	r.mu.Unlock()
	go r.signal()
	return false
}

// takePending removes and returns the queued output as events, waking
// writers held back by the pending limit.
func (r *execRun) takePending() []ExecEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := make([]ExecEvent, len(r.pending))
	for i, c := range r.pending {
		batch[i] = ExecEvent{ExecID: r.exec.ID, Seq: c.seq, Kind: KindLog, Stream: c.stream, Data: string(c.data), CreatedAt: c.at}
	}
	r.pending, r.pendBytes = nil, 0
	r.cond.Broadcast()
	return batch
}

// publishOutput publishes stored events to exec streams and subscribers.
func (r *execRun) publishOutput(batch []ExecEvent) {
	for _, ev := range batch {
		r.m.bus.publishExec(ev)
		r.m.bus.publish(Event{Time: ev.CreatedAt, Type: EventExecOutput, BoxID: r.exec.BoxID, ExecID: r.exec.ID, Output: &ev})
	}
}

// pump waits for the process and finishes the exec.
func (r *execRun) pump() {
	code, err := r.proc.Wait()
	r.finish(&code, errText(err))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// finish stores the exit event and the final record. code is nil when the
// process never started; waitErr is the error waiting for it, if any.
func (r *execRun) finish(code *int, waitErr string) {
	r.fin.Do(func() {
		m := r.m
		defer m.wg.Done()
		r.mu.Lock()
		r.ended = true
		if r.timer != nil {
			r.timer.Stop()
		}
		for _, stream := range []string{"stdout", "stderr"} {
			if rest := r.carry[stream]; len(rest) > 0 {
				r.carry[stream] = nil
				r.queue(stream, rest)
			}
		}
		r.mu.Unlock()
		close(r.stop)
		<-r.flushed
		rest := r.takePending()
		if len(rest) > 0 && !r.store(rest) {
			rest = nil
		}
		logSize := r.written.Load()
		if r.storeErr == nil {
			if err := r.log.finish(); err != nil {
				r.mu.Lock()
				r.storeErr = err
				r.endStatus, r.endReason = ExecFailed, "output storage failed: "+err.Error()
				r.mu.Unlock()
			}
		} else {
			r.log.discard()
		}

		r.mu.Lock()
		e := *r.exec
		e.FinishedAt = m.now()
		info := ExitInfo{}
		switch {
		case r.storeErr != nil:
			e.Status, e.ExitCode, e.ErrorMessage = ExecFailed, code, r.endReason
		case code == nil:
			e.Status, e.ErrorMessage = ExecFailed, waitErr
		case r.endStatus != "":
			e.Status, e.ErrorMessage = r.endStatus, r.endReason
		case r.timedOut:
			e.Status, e.ExitCode = ExecFailed, code
			e.ErrorMessage = fmt.Sprintf("Command timed out after %d ms", e.TimeoutMS)
		case waitErr != "":
			minus := -1
			e.Status, e.ExitCode, e.ErrorMessage = ExecFailed, &minus, waitErr
		case *code == 0:
			e.Status, e.ExitCode = ExecSucceeded, code
		default:
			e.Status, e.ExitCode = ExecFailed, code
		}
		info.ExitCode, info.Error = e.ExitCode, e.ErrorMessage
		data, _ := json.Marshal(info)
		// The exit follows the last stored event: output that could not
		// be stored is not counted.
		exit := ExecEvent{ExecID: e.ID, Seq: r.lastSeq + 1, Kind: KindExit, Data: string(data), CreatedAt: e.FinishedAt}
		truncated := r.truncated
		r.mu.Unlock()

		ev, err := m.store.finishExec(context.WithoutCancel(m.ctx), &e, []ExecEvent{exit}, logSize, truncated)
		final := append(rest, exit)
		if err != nil {
			m.log.Error("exec: store exit", "exec", e.ID, "err", err)
		} else {
			r.publishOutput(final)
			m.bus.publish(ev)
		}
		m.bus.finishExec(e.ID)
		r.final = &e
		m.mu.Lock()
		delete(m.runs, e.ID)
		m.mu.Unlock()
		m.endBusy(e.BoxID)
		close(r.done)
	})
}

// GetExec returns an exec by ID. Errors: EXEC_NOT_FOUND.
func (m *Manager) GetExec(ctx context.Context, execID string) (*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	return m.store.getExec(ctx, execID)
}

// ListExecs returns the execs of a box, newest first. Errors: BOX_NOT_FOUND.
func (m *Manager) ListExecs(ctx context.Context, box string) ([]*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	b, err := m.store.getBox(ctx, box)
	if err != nil {
		return nil, err
	}
	return m.store.listExecs(ctx, b.ID)
}

// WaitExec waits until an exec has finished and returns its final record.
func (m *Manager) WaitExec(ctx context.Context, execID string) (*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	m.mu.Lock()
	r := m.runs[execID]
	m.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.store.getExec(ctx, execID)
}

// CancelExec kills a running exec and records it as canceled, with an exit
// event ({"exit_code": null}) that ends its event streams. Errors:
// EXEC_NOT_FOUND, EXEC_ALREADY_FINISHED.
func (m *Manager) CancelExec(ctx context.Context, execID string) (*Exec, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.leave()
	e, err := m.store.getExec(ctx, execID)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r := m.runs[execID]
	m.mu.Unlock()
	if e.Status != ExecRunning || r == nil {
		return nil, Errorf(CodeExecAlreadyFinished, "Exec already finished")
	}
	r.kill(ExecCanceled, "")
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.final.Status != ExecCanceled {
		return nil, Errorf(CodeExecAlreadyFinished, "Exec already finished")
	}
	return r.final, nil
}

// cancelBoxExecs cancels the running execs of a box and waits for them.
func (m *Manager) cancelBoxExecs(boxID, reason string) {
	m.mu.Lock()
	var runs []*execRun
	for _, r := range m.runs {
		if r.exec.BoxID == boxID {
			runs = append(runs, r)
		}
	}
	m.mu.Unlock()
	for _, r := range runs {
		r.kill(ExecCanceled, reason)
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-time.After(m.cfg.stopTimeout):
			m.log.Warn("exec did not end after kill", "exec", r.exec.ID)
		}
	}
}
