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
	ev, err := m.registerRun(ctx, r)
	if err != nil {
		return nil, err
	}
	m.bus.publish(ev)

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
//
// Output is stored synchronously by the driver's writer goroutine that
// delivers it: one record per write, written with one writev(2) straight
// from the driver's buffer, then published (copied into an event only when
// someone listens). There is no second goroutine and no queue, so no copy
// and no allocation per chunk, and a process that outpaces the disk is
// slowed by its own pipe, as with any pipe (output is never dropped).
type execRun struct {
	m    *Manager
	exec *Exec
	tee  map[string]io.Writer
	done chan struct{} // closed once final is stored
	fin  sync.Once

	// wmu serializes stores (both streams and finish): records reach the
	// log, and events the bus, in seq order. Held across the write; never
	// taken under mu.
	wmu     sync.Mutex
	log     *outLog
	lastSeq int64 // seq of the last stored output event (wmu)
	batch   []outChunk

	mu        sync.Mutex
	proc      sandbox.Process
	seq       int64
	limit     int64             // the output cap of this exec (0: none)
	queued    int64             // output bytes accepted for storage (the cap counts these)
	truncated bool              // the output cap was hit: the rest is dropped
	storeErr  error             // storing output failed: the exec fails, nothing more is stored
	written   atomic.Int64      // end of the last whole record in the log
	carry     map[string][]byte // incomplete UTF-8 tail per stream
	endStatus ExecStatus        // set by kill: canceled or failed
	endReason string
	timedOut  bool
	timer     *time.Timer
	final     *Exec
	ended     bool // finish has begun: later output is discarded
}

// registerRun creates the output log of r's exec, registers r with the
// Manager (m.runs, the wait group Close waits on, the box's busy count;
// finish undoes them) and inserts the exec record, whose event it returns
// for the caller to publish. On failure none of that is left.
func (m *Manager) registerRun(ctx context.Context, r *execRun) (Event, error) {
	e := r.exec
	logPath := outLogPath(m.outDir, e.ID)
	lg, err := createOutLog(logPath)
	if err != nil {
		return Event{}, Errorf(CodeRuntimeError, "Failed to start execution: %w", err)
	}
	r.log = lg
	dropLog := func() {
		lg.discard()
		os.Remove(logPath)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		dropLog()
		return Event{}, ErrClosed
	}
	m.runs[e.ID] = r
	m.wg.Add(1)
	m.mu.Unlock()
	m.beginBusy(e.BoxID)
	ev, err := m.store.insertExec(ctx, e)
	if err != nil {
		dropLog()
		m.mu.Lock()
		delete(m.runs, e.ID)
		m.mu.Unlock()
		m.endBusy(e.BoxID)
		m.wg.Done()
		return Event{}, err
	}
	return ev, nil
}

func newExecRun(m *Manager, e *Exec, tee map[string]io.Writer) *execRun {
	return &execRun{m: m, exec: e, tee: tee, done: make(chan struct{}), carry: map[string][]byte{}, lastSeq: -1}
}

func (r *execRun) started(p sandbox.Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proc = p
	if r.exec.TimeoutMS > 0 {
		limit := time.Duration(r.exec.TimeoutMS) * time.Millisecond
		if sn, ok := p.(sandbox.StartNotifier); ok {
			// The command starts later than its process handle (a one-shot
			// sandbox boots first): the timeout counts from its start, as
			// for an exec in a running box.
			go func() {
				select {
				case <-sn.Started():
				case <-r.done:
					return
				}
				r.mu.Lock()
				defer r.mu.Unlock()
				if !r.ended {
					r.timer = time.AfterFunc(limit, r.timeout)
				}
			}()
		} else {
			r.timer = time.AfterFunc(limit, r.timeout)
		}
	}
	if r.endStatus != "" { // killed before the process started
		go r.signal()
	}
}

// timeout ends the exec as timed out (unless it is ending already).
func (r *execRun) timeout() {
	r.mu.Lock()
	r.timedOut = r.endStatus == ""
	r.mu.Unlock()
	r.signal()
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

// write turns a chunk of output into an event, stored before write
// returns. The event keeps the raw bytes (invalid UTF-8 included:
// byte-exact clients read them through the base64 encoding of the events
// stream, text clients get them made valid at the edge). Bytes of a UTF-8
// sequence split across writes are held back until the sequence is
// complete, so text clients never see a character cut in two.
func (r *execRun) write(stream string, p []byte) (int, error) {
	if w := r.tee[stream]; w != nil {
		_, _ = w.Write(p) // the caller's writer; its errors are its own
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	if r.ended || r.storeErr != nil || r.truncated {
		// Finished without its process (Close), unstorable, or over the
		// cap: the output goes nowhere.
		r.mu.Unlock()
		return len(p), nil
	}
	buf := p // the caller's: stored before write returns, never kept
	if c := r.carry[stream]; len(c) > 0 {
		buf = append(c, p...)
		r.carry[stream] = nil
	}
	cut := utf8Complete(buf)
	if cut < len(buf) {
		r.carry[stream] = append([]byte(nil), buf[cut:]...)
	}
	batch := r.batch[:0]
	if cut > 0 {
		batch = r.queue(batch, stream, buf[:cut])
	}
	r.mu.Unlock()
	r.store(batch)
	r.batch = batch[:0]
	return len(p), nil
}

// outChunk is output on its way to the log: one future event. data is
// borrowed from the writer until stored.
type outChunk struct {
	seq    int64
	stream string
	at     time.Time
	data   []byte
}

// queue appends output text to batch as a log event (r.mu held). Past
// the output cap it appends the part that fits, then a truncation marker
// (a stderr log event), and drops the rest.
func (r *execRun) queue(batch []outChunk, stream string, text []byte) []outChunk {
	if r.truncated {
		return batch
	}
	if limit := r.limit; limit > 0 && r.queued+int64(len(text)) > limit {
		fit := int(limit - r.queued)
		for back := 0; back < utf8.UTFMax && fit > 0 && !utf8.RuneStart(text[fit]); back++ {
			fit-- // do not cut a character in two
		}
		batch = r.add(batch, stream, text[:fit])
		batch = r.add(batch, "stderr", []byte(TruncationMarker(limit)))
		r.truncated = true
		return batch
	}
	return r.add(batch, stream, text)
}

// add appends text as the next event (r.mu held).
func (r *execRun) add(batch []outChunk, stream string, text []byte) []outChunk {
	if len(text) == 0 {
		return batch
	}
	r.queued += int64(len(text))
	batch = append(batch, outChunk{seq: r.seq, stream: stream, at: r.m.now(), data: text})
	r.seq++
	return batch
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

// store appends batch to the log and publishes it (r.wmu held). A batch
// that cannot be stored fails the exec (killing its process) and is never
// published.
func (r *execRun) store(batch []outChunk) {
	if len(batch) == 0 {
		return
	}
	r.mu.Lock()
	failed := r.storeErr != nil
	r.mu.Unlock()
	if failed {
		return
	}
	off, err := r.log.append(batch)
	if err != nil {
		r.m.log.Error("exec: store output", "exec", r.exec.ID, "err", err)
		r.mu.Lock()
		r.storeErr = err
		r.endStatus, r.endReason = ExecFailed, "output storage failed: "+err.Error()
		r.mu.Unlock()
		go r.signal()
		return
	}
	r.written.Store(off)
	r.lastSeq = batch[len(batch)-1].seq
	r.publishOutput(batch)
}

// publishOutput publishes stored chunks to exec streams and subscribers.
// The copy into an event is made only when someone listens: a reader that
// subscribes later replays the log, which already holds the chunks.
func (r *execRun) publishOutput(batch []outChunk) {
	if !r.m.bus.wantsOutput(r.exec.ID, r.exec.BoxID) {
		return
	}
	for _, c := range batch {
		ev := ExecEvent{ExecID: r.exec.ID, Seq: c.seq, Kind: KindLog, Stream: c.stream, Data: string(c.data), CreatedAt: c.at}
		r.publishEvent(ev)
	}
}

// publishEvent publishes one stored event of the exec.
func (r *execRun) publishEvent(ev ExecEvent) {
	r.m.bus.publishExec(ev)
	r.m.bus.publish(Event{Time: ev.CreatedAt, Type: EventExecOutput, BoxID: r.exec.BoxID, ExecID: r.exec.ID, Output: &ev})
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
		// Wait for a store in progress; every later write sees ended.
		r.wmu.Lock()
		r.mu.Lock()
		r.ended = true
		if r.timer != nil {
			r.timer.Stop()
		}
		var rest []outChunk
		for _, stream := range []string{"stdout", "stderr"} {
			if tail := r.carry[stream]; len(tail) > 0 {
				r.carry[stream] = nil
				rest = r.queue(rest, stream, tail)
			}
		}
		r.mu.Unlock()
		r.store(rest)
		logSize, lastSeq := r.written.Load(), r.lastSeq
		r.wmu.Unlock()
		r.mu.Lock()
		storeErr := r.storeErr
		r.mu.Unlock()
		if storeErr != nil {
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
		exit := ExecEvent{ExecID: e.ID, Seq: lastSeq + 1, Kind: KindExit, Data: string(data), CreatedAt: e.FinishedAt}
		truncated := r.truncated
		r.mu.Unlock()

		// The log is synced after the commit (outsync.go); a log never
		// written to has nothing to sync.
		synced := storeErr != nil || logSize == 0
		ev, err := m.store.finishExec(context.WithoutCancel(m.ctx), &e, []ExecEvent{exit}, logSize, truncated, synced)
		if storeErr == nil {
			if logSize == 0 || err != nil {
				r.log.discard() // nothing to sync, or Open checks it
			} else {
				m.syncLater(e.ID, r.log.file())
			}
		}
		if err != nil {
			m.log.Error("exec: store exit", "exec", e.ID, "err", err)
		} else {
			r.publishEvent(exit)
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
