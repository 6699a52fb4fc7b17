package boxrun_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, m *boxrun.Manager, spec boxrun.BoxSpec) *boxrun.Box {
	t.Helper()
	b, err := m.Create(ctxT(t), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return b
}

func wantCode(t *testing.T, err error, code boxrun.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %s", code)
	}
	if got := boxrun.ErrorCode(err); got != code {
		t.Fatalf("code = %s (%v), want %s", got, err, code)
	}
	if msg != "" && boxrun.ErrorMessage(err) != msg {
		t.Fatalf("message = %q, want %q", boxrun.ErrorMessage(err), msg)
	}
}

func TestManager_Create(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		m := boxruntest.NewManager(t)
		b := mustCreate(t, m, boxrun.BoxSpec{Image: "test", Name: "dev", Env: map[string]string{"A": "1"}})
		if !strings.HasPrefix(b.ID, "box_") || len(b.ID) != 16 {
			t.Errorf("id = %q", b.ID)
		}
		if b.Status != boxrun.StatusRunning || b.CPU != 2 || b.MemoryMB != 1024 || b.DiskSizeGB != 8 || b.Workdir != "/root" {
			t.Errorf("box = %+v", b)
		}
		if b.Handle == "" || b.StartedAt.IsZero() || !b.StoppedAt.IsZero() {
			t.Errorf("box = %+v", b)
		}
		for _, ref := range []string{b.ID, "dev"} {
			got, err := m.Get(ctxT(t), ref)
			if err != nil || got.ID != b.ID || got.Env["A"] != "1" {
				t.Errorf("Get(%s) = %+v, %v", ref, got, err)
			}
		}
	})
	t.Run("ErrValidation", func(t *testing.T) {
		m := boxruntest.NewManager(t)
		for _, tc := range []struct {
			spec boxrun.BoxSpec
			msg  string
		}{
			{boxrun.BoxSpec{CPU: -1, MemoryMB: -1}, "cpu must be greater than 0"},
			{boxrun.BoxSpec{MemoryMB: -5}, "memory_mb must be greater than 0"},
			{boxrun.BoxSpec{DiskSizeGB: -1, Workdir: "x"}, "disk_size_gb must be greater than 0"},
			{boxrun.BoxSpec{Workdir: "relative"}, "workdir must be an absolute path (starting with /)"},
		} {
			_, err := m.Create(ctxT(t), tc.spec)
			wantCode(t, err, boxrun.CodeValidationError, tc.msg)
			if !errors.Is(err, boxrun.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
		}
		if boxes, _ := m.List(ctxT(t), boxrun.BoxFilter{}); len(boxes) != 0 {
			t.Errorf("invalid creates left %d boxes", len(boxes))
		}
	})
	t.Run("ErrNameAlreadyExists", func(t *testing.T) {
		m := boxruntest.NewManager(t)
		b := mustCreate(t, m, boxrun.BoxSpec{Name: "dev"})
		_, err := m.Create(ctxT(t), boxrun.BoxSpec{Name: "dev"})
		wantCode(t, err, boxrun.CodeNameAlreadyExists, "A box with name 'dev' already exists")
		_, err = m.Create(ctxT(t), boxrun.BoxSpec{Name: b.ID})
		wantCode(t, err, boxrun.CodeNameAlreadyExists, "")
		if !errors.Is(err, boxrun.ErrAlreadyExists) {
			t.Errorf("not ErrAlreadyExists: %v", err)
		}
	})
	t.Run("ErrVolumeMissing", func(t *testing.T) {
		m := boxruntest.NewManager(t)
		_, err := m.Create(ctxT(t), boxrun.BoxSpec{Volumes: []boxrun.Volume{{HostPath: "/nonexistent/x", GuestPath: "/data"}}})
		wantCode(t, err, boxrun.CodeRuntimeError, "Volume host path does not exist: /nonexistent/x")
	})
	t.Run("ErrResourceExceeded", func(t *testing.T) {
		m := boxruntest.NewManager(t, boxrun.WithLimits(4, 4096))
		mustCreate(t, m, boxrun.BoxSpec{CPU: 3})
		_, err := m.Create(ctxT(t), boxrun.BoxSpec{CPU: 2})
		wantCode(t, err, boxrun.CodeResourceExceeded, "Total CPU limit (4) would be exceeded")
		_, err = m.Create(ctxT(t), boxrun.BoxSpec{CPU: 1, MemoryMB: 4000})
		wantCode(t, err, boxrun.CodeResourceExceeded, "Total memory limit (4096MB) would be exceeded")
		b := mustCreate(t, m, boxrun.BoxSpec{CPU: 1, MemoryMB: 1024}) // equal to the limit is allowed
		if _, err := m.Stop(ctxT(t), b.ID); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, m, boxrun.BoxSpec{CPU: 1, MemoryMB: 1024}) // stop released it
		_, err = m.Start(ctxT(t), b.ID)
		wantCode(t, err, boxrun.CodeResourceExceeded, "Total CPU limit would be exceeded")
	})
	t.Run("DriverFailureMarksError", func(t *testing.T) {
		dir := t.TempDir()
		d := &failingDriver{Driver: boxruntest.NewFakeDriver(dir + "/fake"), failCreate: errors.New("boom")}
		m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(nil), boxrun.WithLimits(2, 2048))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		_, err = m.Create(ctxT(t), boxrun.BoxSpec{Name: "bad", CPU: 2})
		wantCode(t, err, boxrun.CodeRuntimeError, "Failed to create BoxLite VM: boom")
		b, err := m.Get(ctxT(t), "bad")
		if err != nil || b.Status != boxrun.StatusError || b.ErrorCode != "RUNTIME_ERROR" || b.ErrorMessage != "Failed to create BoxLite VM: boom" {
			t.Fatalf("box = %+v, %v", b, err)
		}
		d.failCreate = nil
		mustCreate(t, m, boxrun.BoxSpec{CPU: 2}) // the reservation was released
		if n, err := m.GC(ctxT(t), 0); err != nil || n != 1 {
			t.Errorf("GC = %d, %v; want the error box removed", n, err)
		}
	})
}

// failingDriver wraps a driver to inject failures a real driver cannot be
// made to produce on demand.
type failingDriver struct {
	sandbox.Driver
	failCreate error
}

func (d *failingDriver) Create(ctx context.Context, spec sandbox.Spec) (string, error) {
	if d.failCreate != nil {
		return "", d.failCreate
	}
	return d.Driver.Create(ctx, spec)
}

func TestManager_Lifecycle(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{Name: "life"})
	if err := m.UploadFile(ctx, "life", "/root/keep.txt", strings.NewReader("kept")); err != nil {
		t.Fatal(err)
	}
	_, err := m.Start(ctx, "life")
	wantCode(t, err, boxrun.CodeBoxAlreadyRunning, "Box 'life' is already running")
	err = m.Remove(ctx, "life", false)
	wantCode(t, err, boxrun.CodeBoxAlreadyRunning, "Box is running. Use force=true to remove.")

	stopped, err := m.Stop(ctx, "life")
	if err != nil || stopped.Status != boxrun.StatusStopped || stopped.StoppedAt.IsZero() {
		t.Fatalf("stop = %+v, %v", stopped, err)
	}
	_, err = m.Stop(ctx, "life")
	wantCode(t, err, boxrun.CodeBoxNotRunning, "Box 'life' is not running (status: stopped)")
	_, err = m.StartExec(ctx, "life", boxrun.ExecRequest{Cmd: []string{"true"}})
	wantCode(t, err, boxrun.CodeBoxNotRunning, "Box 'life' is not running")
	err = m.UploadFile(ctx, "life", "/root/x", strings.NewReader("x"))
	wantCode(t, err, boxrun.CodeBoxNotRunning, "Box is not running")

	started, err := m.Start(ctx, "life")
	if err != nil || started.Status != boxrun.StatusRunning || !started.StoppedAt.IsZero() {
		t.Fatalf("start = %+v, %v", started, err)
	}
	var buf bytes.Buffer
	if err := m.DownloadFile(ctx, b.ID, "/root/keep.txt", &buf); err != nil || buf.String() != "kept" {
		t.Fatalf("after restart: %q, %v", buf.String(), err)
	}
	if err := m.Remove(ctx, "life", true); err != nil {
		t.Fatal(err)
	}
	_, err = m.Get(ctx, "life")
	wantCode(t, err, boxrun.CodeBoxNotFound, "Box 'life' not found")
	if !errors.Is(err, boxrun.ErrNotFound) {
		t.Error("not ErrNotFound")
	}
}

func TestManager_DriverInfo(t *testing.T) {
	m := boxruntest.NewManager(t)
	if got := m.DriverInfo(); got.Name != "fake" || got.Details == nil {
		t.Fatalf("DriverInfo = %+v", got)
	}
	info, _ := m.Info(ctxT(t))
	if info.MaxCPU != 64 || info.MaxMemoryMB != 64<<10 {
		t.Fatalf("Info = %+v", info)
	}
}

func TestManager_List(t *testing.T) {
	m := boxruntest.NewManager(t)
	a := mustCreate(t, m, boxrun.BoxSpec{})
	b := mustCreate(t, m, boxrun.BoxSpec{})
	if _, err := m.Stop(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	all, _ := m.List(ctxT(t), boxrun.BoxFilter{Status: "all"})
	if len(all) != 2 || all[0].ID != b.ID || all[1].ID != a.ID {
		t.Fatalf("list = %v, want newest first", all)
	}
	running, _ := m.List(ctxT(t), boxrun.BoxFilter{Status: boxrun.StatusRunning})
	if len(running) != 1 || running[0].ID != b.ID {
		t.Fatalf("running = %v", running)
	}
	none, _ := m.List(ctxT(t), boxrun.BoxFilter{Status: "bogus"})
	if len(none) != 0 {
		t.Fatalf("bogus = %v", none)
	}
}

func TestManager_Exec(t *testing.T) {
	m := boxruntest.NewManager(t)
	b := mustCreate(t, m, boxrun.BoxSpec{Env: map[string]string{"BOXVAR": "box"}})
	ctx := ctxT(t)
	run := func(req boxrun.ExecRequest) (*boxrun.Exec, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		e, err := m.Exec(ctx, b.ID, req, &out, &errb)
		if err != nil {
			t.Fatalf("exec %v: %v", req.Cmd, err)
		}
		return e, out.String(), errb.String()
	}
	t.Run("OK", func(t *testing.T) {
		e, out, errs := run(boxrun.ExecRequest{Cmd: []string{"sh", "-c", "echo out; echo err >&2; echo $BOXVAR $EXECVAR"}, Env: map[string]string{"EXECVAR": "exec"}})
		if e.Status != boxrun.ExecSucceeded || *e.ExitCode != 0 || out != "out\nbox exec\n" || errs != "err\n" {
			t.Fatalf("exec = %+v out=%q err=%q", e, out, errs)
		}
		if e.FinishedAt.IsZero() || e.Env["EXECVAR"] != "exec" {
			t.Errorf("record = %+v", e)
		}
	})
	t.Run("NonZeroExit", func(t *testing.T) {
		e, _, _ := run(boxrun.ExecRequest{Cmd: []string{"sh", "-c", "exit 42"}})
		if e.Status != boxrun.ExecFailed || *e.ExitCode != 42 || e.ErrorMessage != "" {
			t.Fatalf("exec = %+v", e)
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		_, out, _ := run(boxrun.ExecRequest{Cmd: []string{"cat"}, Stdin: strings.NewReader("from stdin")})
		if out != "from stdin" {
			t.Fatalf("out = %q", out)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		start := time.Now()
		e, _, _ := run(boxrun.ExecRequest{Cmd: []string{"sleep", "30"}, TimeoutMS: 200})
		if e.Status != boxrun.ExecFailed || e.ErrorMessage != "Command timed out after 200 ms" || time.Since(start) > 10*time.Second {
			t.Fatalf("exec = %+v after %v", e, time.Since(start))
		}
	})
	t.Run("ErrValidation", func(t *testing.T) {
		_, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{})
		wantCode(t, err, boxrun.CodeValidationError, "cmd must be a non-empty list")
		_, err = m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"true"}, Workdir: "rel"})
		wantCode(t, err, boxrun.CodeValidationError, "workdir must be an absolute path (starting with /)")
		_, err = m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"true"}, TimeoutMS: -1})
		wantCode(t, err, boxrun.CodeValidationError, "timeout_ms must be positive")
		_, err = m.StartExec(ctx, "nope", boxrun.ExecRequest{Cmd: []string{"true"}})
		wantCode(t, err, boxrun.CodeBoxNotFound, "Box 'nope' not found")
	})
	t.Run("StartFailureRecordsFailedExec", func(t *testing.T) {
		_, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"/no/such/program"}})
		wantCode(t, err, boxrun.CodeRuntimeError, "")
		if !strings.HasPrefix(boxrun.ErrorMessage(err), "Failed to start execution: ") {
			t.Errorf("message = %q", boxrun.ErrorMessage(err))
		}
		execs, _ := m.ListExecs(ctx, b.ID)
		if len(execs) == 0 || execs[0].Status != boxrun.ExecFailed || execs[0].ErrorMessage == "" {
			t.Fatalf("newest exec = %+v", execs[0])
		}
		var kinds []boxrun.EventKind
		_ = m.ExecEvents(ctx, execs[0].ID, -1, func(ev boxrun.ExecEvent) error { kinds = append(kinds, ev.Kind); return nil })
		if len(kinds) != 1 || kinds[0] != boxrun.KindExit {
			t.Errorf("events = %v, want one exit", kinds)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.CancelExec(ctx, e.ID)
		if err != nil || c.Status != boxrun.ExecCanceled || c.ExitCode != nil || c.FinishedAt.IsZero() {
			t.Fatalf("cancel = %+v, %v", c, err)
		}
		_, err = m.CancelExec(ctx, e.ID)
		wantCode(t, err, boxrun.CodeExecAlreadyFinished, "Exec already finished")
		var last boxrun.ExecEvent
		if err := m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error { last = ev; return nil }); err != nil {
			t.Fatal(err)
		}
		if info, ok := last.Exit(); !ok || info.ExitCode != nil {
			t.Errorf("last event = %+v, want exit with null code", last)
		}
		_, err = m.GetExec(ctx, "exec_nonexistent0")
		wantCode(t, err, boxrun.CodeExecNotFound, "Exec 'exec_nonexistent0' not found")
	})
	t.Run("ContextCancelKills", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		e, err := m.Exec(cctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}}, nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) || e.Status != boxrun.ExecCanceled {
			t.Fatalf("exec = %+v, %v", e, err)
		}
	})
	t.Run("UTF8SplitAcrossWrites", func(t *testing.T) {
		e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", `printf '\342'; sleep 0.2; printf '\202\254 done'`}})
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		_ = m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
			if ev.Kind == boxrun.KindLog {
				text.WriteString(ev.Data)
			}
			return nil
		})
		if text.String() != "€ done" {
			t.Fatalf("text = %q", text.String())
		}
	})
}

func TestManager_ExecEvents(t *testing.T) {
	m := boxruntest.NewManager(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	ctx := ctxT(t)
	script := `i=0; while [ $i -lt 300 ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done`
	e, err := m.StartExec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	// Many subscribers, joining at different times, must each see the same
	// gapless, duplicate-free sequence ending in exactly one exit.
	var wg sync.WaitGroup
	results := make([][]boxrun.ExecEvent, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			if err := m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
				results[i] = append(results[i], ev)
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var stdout strings.Builder
	for i, evs := range results {
		for j, ev := range evs {
			if ev.Seq != int64(j) {
				t.Fatalf("subscriber %d: event %d has seq %d", i, j, ev.Seq)
			}
			if (ev.Kind == boxrun.KindExit) != (j == len(evs)-1) {
				t.Fatalf("subscriber %d: exit at %d of %d", i, j, len(evs))
			}
			if i == 0 && ev.Stream == "stdout" {
				stdout.WriteString(ev.Data)
			}
		}
		if len(evs) != len(results[0]) {
			t.Fatalf("subscriber %d saw %d events, subscriber 0 saw %d", i, len(evs), len(results[0]))
		}
	}
	if n := strings.Count(stdout.String(), "\n"); n != 300 {
		t.Fatalf("stdout lines = %d", n)
	}
	// Resume after a seq.
	var resumed []int64
	mid := int64(len(results[0]) / 2)
	if err := m.ExecEvents(ctx, e.ID, mid, func(ev boxrun.ExecEvent) error { resumed = append(resumed, ev.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(resumed) == 0 || resumed[0] != mid+1 || len(resumed) != len(results[0])-int(mid)-1 {
		t.Fatalf("resumed = %v", resumed[:min(3, len(resumed))])
	}
	// Resuming after the exit event returns at once with nothing.
	exitSeq := results[0][len(results[0])-1].Seq
	n := 0
	if err := m.ExecEvents(ctx, e.ID, exitSeq, func(boxrun.ExecEvent) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("after exit: %d events, %v", n, err)
	}
}

func TestManager_Run(t *testing.T) {
	m := boxruntest.NewManager(t)
	res, err := m.Run(ctxT(t), boxrun.RunRequest{Cmd: []string{"sh", "-c", "echo hi; echo $X >&2; exit 3"}, Env: map[string]string{"X": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	if *res.ExitCode != 3 || res.Stdout != "hi\n" || res.Stderr != "y\n" || res.ErrorMessage != nil {
		t.Fatalf("run = %+v", res)
	}
	if boxes, _ := m.List(ctxT(t), boxrun.BoxFilter{}); len(boxes) != 0 {
		t.Fatalf("run left %d boxes", len(boxes))
	}
	_, err = m.Run(ctxT(t), boxrun.RunRequest{Cmd: []string{"/no/such"}})
	wantCode(t, err, boxrun.CodeRuntimeError, "")
	if boxes, _ := m.List(ctxT(t), boxrun.BoxFilter{}); len(boxes) != 0 {
		t.Fatalf("failed run left %d boxes", len(boxes))
	}
}

func TestManager_RemoveCancelsExecs(t *testing.T) {
	m := boxruntest.NewManager(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.StartExec(ctxT(t), b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- m.ExecEvents(ctxT(t), e.ID, -1, func(boxrun.ExecEvent) error { return nil })
	}()
	if err := m.Remove(ctxT(t), b.ID, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("event stream still open after the box was removed")
	}
	_, err = m.GetExec(ctxT(t), e.ID)
	wantCode(t, err, boxrun.CodeExecNotFound, "")
}

func TestManager_Subscribe(t *testing.T) {
	m := boxruntest.NewManager(t)
	ctx := ctxT(t)
	sub, err := m.Subscribe(ctx, boxrun.EventFilter{Types: []boxrun.EventType{boxrun.EventBoxCreated, boxrun.EventBoxStarted, boxrun.EventExecExited, boxrun.EventBoxRemoved}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b := mustCreate(t, m, boxrun.BoxSpec{})
	if _, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"true"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 4 {
		select {
		case ev := <-sub.C():
			got = append(got, string(ev.Type))
			if ev.Seq == 0 || ev.BoxID != b.ID {
				t.Errorf("event %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v", got)
		}
	}
	if want := "box.created box.started exec.exited box.removed"; strings.Join(got, " ") != want {
		t.Fatalf("events = %v, want %s", got, want)
	}
	// Replay gives the same journal.
	rsub, err := m.Subscribe(ctx, boxrun.EventFilter{Replay: true, BoxID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer rsub.Close()
	var replayed []string
	for len(replayed) < 5 {
		select {
		case ev := <-rsub.C():
			replayed = append(replayed, string(ev.Type))
		case <-time.After(5 * time.Second):
			t.Fatalf("replayed %v", replayed)
		}
	}
	if want := "box.created box.started exec.started exec.exited box.removed"; strings.Join(replayed, " ") != want {
		t.Fatalf("replayed = %v", replayed)
	}
	if err := sub.Close(); err != nil || sub.Close() != nil {
		t.Fatal("Close not idempotent")
	}
}

func TestManager_Reopen(t *testing.T) {
	dir := t.TempDir()
	open := func() *boxrun.Manager { return boxruntest.OpenManager(t, dir) }
	m := open()
	ctx := ctxT(t)
	b := mustCreate(t, m, boxrun.BoxSpec{Name: "persist", CPU: 1, MemoryMB: 64})
	e, err := m.Exec(ctx, b.ID, boxrun.ExecRequest{Cmd: []string{"echo", "persisted"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Get(ctx, b.ID); !errors.Is(err, boxrun.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	m = open()
	defer m.Close()
	got, err := m.Get(ctx, "persist")
	if err != nil || got.Status != boxrun.StatusRunning {
		t.Fatalf("reopened box = %+v, %v", got, err)
	}
	var out string
	if err := m.ExecEvents(ctx, e.ID, -1, func(ev boxrun.ExecEvent) error {
		if ev.Kind == boxrun.KindLog {
			out += ev.Data
		}
		return nil
	}); err != nil || out != "persisted\n" {
		t.Fatalf("replayed %q, %v", out, err)
	}
	if ge, _ := m.GetExec(ctx, e.ID); ge.Status != boxrun.ExecSucceeded {
		t.Fatalf("exec = %+v", ge)
	}
	var buf bytes.Buffer
	if _, err := m.Exec(ctx, "persist", boxrun.ExecRequest{Cmd: []string{"echo", "again"}}, &buf, nil); err != nil || buf.String() != "again\n" {
		t.Fatalf("exec after reopen: %q, %v", buf.String(), err)
	}
}

func TestManager_GC(t *testing.T) {
	m := boxruntest.NewManager(t)
	a := mustCreate(t, m, boxrun.BoxSpec{})
	mustCreate(t, m, boxrun.BoxSpec{})
	if _, err := m.Stop(ctxT(t), a.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := m.GC(ctxT(t), time.Hour); n != 0 {
		t.Fatalf("GC(1h) removed %d", n)
	}
	if n, _ := m.GC(ctxT(t), -time.Second); n != 1 {
		t.Fatalf("GC removed %d, want 1", n)
	}
	boxes, _ := m.List(ctxT(t), boxrun.BoxFilter{})
	if len(boxes) != 1 || boxes[0].ID == a.ID {
		t.Fatalf("boxes = %v", boxes)
	}
}

func TestManager_Copy(t *testing.T) {
	m := boxruntest.NewManager(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	ctx := ctxT(t)
	payload := bytes.Repeat([]byte{0, 1, 2, 255, 'x'}, 100000)
	if err := m.UploadFile(ctx, b.ID, "/root/sub/bin.dat", bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := m.DownloadFile(ctx, b.ID, "/root/sub/bin.dat", &got); err != nil || !bytes.Equal(got.Bytes(), payload) {
		t.Fatalf("download: %d bytes, %v", got.Len(), err)
	}
	err := m.DownloadFile(ctx, b.ID, "/root/missing.txt", &got)
	wantCode(t, err, boxrun.CodeRuntimeError, "File '/root/missing.txt' not found in box")
	err = m.UploadFile(ctx, b.ID, "/root/dir/", strings.NewReader("x"))
	wantCode(t, err, boxrun.CodeRuntimeError, "Invalid destination path (no filename): /root/dir/")
	err = m.DownloadFile(ctx, b.ID, "/root/sub/", &got)
	wantCode(t, err, boxrun.CodeRuntimeError, "Invalid source path (no filename): /root/sub/")
	// A directory round trip through tar streams.
	var tarball bytes.Buffer
	if err := m.CopyOut(ctx, b.ID, "/root/sub", &tarball); err != nil {
		t.Fatal(err)
	}
	if err := m.CopyIn(ctx, b.ID, "/root/copy", &tarball); err != nil {
		t.Fatal(err)
	}
	got.Reset()
	if err := m.DownloadFile(ctx, b.ID, "/root/copy/sub/bin.dat", &got); err != nil || !bytes.Equal(got.Bytes(), payload) {
		t.Fatalf("copied dir: %d bytes, %v", got.Len(), err)
	}
}

func TestManager_ConcurrentExecs(t *testing.T) {
	m := boxruntest.NewManager(t)
	b := mustCreate(t, m, boxrun.BoxSpec{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			e, err := m.Exec(ctxT(t), b.ID, boxrun.ExecRequest{Cmd: []string{"echo", fmt.Sprint(i)}}, &out, nil)
			if err != nil || e.Status != boxrun.ExecSucceeded || out.String() != fmt.Sprintf("%d\n", i) {
				t.Errorf("exec %d: %+v %q %v", i, e, out.String(), err)
			}
		}()
	}
	wg.Wait()
	execs, _ := m.ListExecs(ctxT(t), b.ID)
	if len(execs) != 20 {
		t.Fatalf("execs = %d", len(execs))
	}
}

func TestManager_CloseFinalizesRunningExecs(t *testing.T) {
	dir := t.TempDir()
	open := func() *boxrun.Manager { return boxruntest.OpenManager(t, dir) }
	m := open()
	b := mustCreate(t, m, boxrun.BoxSpec{})
	e, err := m.StartExec(ctxT(t), b.ID, boxrun.ExecRequest{Cmd: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- m.ExecEvents(context.Background(), e.ID, -1, func(boxrun.ExecEvent) error { return nil })
	}()
	start := time.Now()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	<-streamDone
	m = open()
	defer m.Close()
	got, err := m.GetExec(ctxT(t), e.ID)
	if err != nil || got.Status != boxrun.ExecFailed || got.ErrorMessage != "server shutting down" {
		t.Fatalf("exec after Close = %+v, %v", got, err)
	}
}
