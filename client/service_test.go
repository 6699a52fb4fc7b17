package client_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
)

// TestService runs one table of behaviour checks against the in-process
// Manager and against client → httpapi → Manager over loopback, so that
// remote is proven to behave like local (errors.Is included).
func TestService(t *testing.T) {
	targets := []struct {
		name string
		open func(t *testing.T) boxapi.Service
	}{
		{"local", func(t *testing.T) boxapi.Service { return boxruntest.NewManager(t) }},
		{"remote", func(t *testing.T) boxapi.Service { c, _ := newRemote(t); return c }},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			for _, ck := range serviceChecks() {
				t.Run(ck.name, func(t *testing.T) {
					t.Parallel()
					ck.run(t, ctxT(t), tg.open(t))
				})
			}
		})
	}
}

type serviceCheck struct {
	name string
	run  func(t *testing.T, ctx context.Context, svc boxapi.Service)
}

func mustCreate(t *testing.T, ctx context.Context, svc boxapi.Service, spec boxapi.BoxSpec) *boxapi.Box {
	t.Helper()
	if spec.Image == "" {
		spec.Image = "busybox"
	}
	b, err := svc.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create(%+v): %v", spec, err)
	}
	return b
}

func wantKind(t *testing.T, what string, err, kind error, code boxapi.Code) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: err = %v, want errors.Is %v", what, err, kind)
	}
	if got := boxapi.ErrorCode(err); got != code {
		t.Errorf("%s: code = %s, want %s", what, got, code)
	}
}

func exitOf(e *boxapi.Exec) int {
	if e == nil || e.ExitCode == nil {
		return -1000
	}
	return *e.ExitCode
}

func serviceChecks() []serviceCheck {
	return []serviceCheck{
		{"Info", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			info, err := svc.Info(ctx)
			if err != nil || info.MaxCPU != 64 || info.MaxMemoryMB != 64<<10 {
				t.Errorf("Info = %+v, %v; want 64 CPUs and 64 GiB", info, err)
			}
		}},
		{"Lifecycle", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{Name: "life", Env: map[string]string{"A": "1"}})
			if b.Status != boxapi.StatusRunning || b.CPU != boxapi.DefaultCPU || b.MemoryMB != boxapi.DefaultMemoryMB ||
				b.Workdir != boxapi.DefaultWorkdir || b.Env["A"] != "1" || b.Name != "life" {
				t.Errorf("Create = %+v", b)
			}
			got, err := svc.Get(ctx, "life")
			if err != nil || got.ID != b.ID {
				t.Fatalf("Get by name = %v, %v", got, err)
			}
			list, err := svc.List(ctx, boxapi.BoxFilter{Status: boxapi.StatusRunning})
			if err != nil || len(list) != 1 || list[0].ID != b.ID {
				t.Errorf("List(running) = %v, %v", list, err)
			}
			if s, err := svc.Stop(ctx, b.ID); err != nil || s.Status != boxapi.StatusStopped || s.StoppedAt.IsZero() {
				t.Errorf("Stop = %+v, %v", s, err)
			}
			if list, _ := svc.List(ctx, boxapi.BoxFilter{Status: boxapi.StatusRunning}); len(list) != 0 {
				t.Errorf("List(running) after stop = %d boxes", len(list))
			}
			if s, err := svc.Start(ctx, "life"); err != nil || s.Status != boxapi.StatusRunning || !s.StoppedAt.IsZero() {
				t.Errorf("Start = %+v, %v", s, err)
			}
			if err := svc.Remove(ctx, b.ID, true); err != nil {
				t.Errorf("Remove: %v", err)
			}
			_, err = svc.Get(ctx, b.ID)
			wantKind(t, "Get after Remove", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
		}},
		{"OddNames", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			for _, name := range []string{"we ird/na%me?#ü", "a+b&c=d", "..", "%2F"} {
				b := mustCreate(t, ctx, svc, boxapi.BoxSpec{Name: name})
				got, err := svc.Get(ctx, name)
				if err != nil || got.ID != b.ID || got.Name != name {
					t.Errorf("Get(%q) = %+v, %v", name, got, err)
					continue
				}
				var out strings.Builder
				if _, err := svc.Exec(ctx, name, boxapi.ExecRequest{Cmd: []string{"echo", "ok"}}, &out, nil); err != nil || out.String() != "ok\n" {
					t.Errorf("Exec in %q: %q, %v", name, out.String(), err)
				}
				if err := svc.Remove(ctx, name, true); err != nil {
					t.Errorf("Remove(%q): %v", name, err)
				}
			}
		}},
		{"Errors", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			_, err := svc.Get(ctx, "nope")
			wantKind(t, "Get missing", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
			if err != nil && boxapi.ErrorMessage(err) != "Box 'nope' not found" {
				t.Errorf("message = %q", boxapi.ErrorMessage(err))
			}
			_, err = svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", CPU: -1})
			wantKind(t, "Create cpu -1", err, boxapi.ErrInvalid, boxapi.CodeValidationError)
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{Name: "dup"})
			_, err = svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", Name: "dup"})
			wantKind(t, "Create duplicate name", err, boxapi.ErrAlreadyExists, boxapi.CodeNameAlreadyExists)
			_, err = svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", CPU: 100})
			wantKind(t, "Create over limit", err, boxapi.ErrResourceExceeded, boxapi.CodeResourceExceeded)
			err = svc.Remove(ctx, b.ID, false)
			wantKind(t, "Remove running", err, boxapi.ErrConflict, boxapi.CodeBoxAlreadyRunning)
			_, err = svc.Start(ctx, b.ID)
			wantKind(t, "Start running", err, boxapi.ErrConflict, boxapi.CodeBoxAlreadyRunning)
			_, err = svc.StartExec(ctx, b.ID, boxapi.ExecRequest{})
			wantKind(t, "exec without cmd", err, boxapi.ErrInvalid, boxapi.CodeValidationError)
			if _, err := svc.Stop(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			_, err = svc.Stop(ctx, b.ID)
			wantKind(t, "Stop stopped", err, boxapi.ErrConflict, boxapi.CodeBoxNotRunning)
			_, err = svc.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"true"}}, nil, nil)
			wantKind(t, "Exec on stopped", err, boxapi.ErrConflict, boxapi.CodeBoxNotRunning)
			_, err = svc.Attach(ctx, b.ID, boxapi.AttachRequest{Cmd: []string{"true"}})
			wantKind(t, "Attach on stopped", err, boxapi.ErrConflict, boxapi.CodeBoxNotRunning)
			_, err = svc.Attach(ctx, "nope", boxapi.AttachRequest{})
			wantKind(t, "Attach missing", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
			_, err = svc.GetExec(ctx, "exec_missing")
			wantKind(t, "GetExec missing", err, boxapi.ErrNotFound, boxapi.CodeExecNotFound)
			err = svc.ExecEvents(ctx, "exec_missing", -1, func(boxapi.ExecEvent) error { return nil })
			wantKind(t, "ExecEvents missing", err, boxapi.ErrNotFound, boxapi.CodeExecNotFound)
			err = svc.DownloadFile(ctx, "nope", "/root/x", io.Discard)
			wantKind(t, "Download from missing box", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
		}},
		{"Validation", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			for _, tc := range []struct {
				what string
				err  error
				code boxapi.Code
				msg  string
			}{
				{"exec relative workdir", func() error {
					_, err := svc.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"true"}, Workdir: "rel"})
					return err
				}(), boxapi.CodeValidationError, "workdir must be an absolute path (starting with /)"},
				{"exec negative timeout", func() error {
					_, err := svc.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"true"}, TimeoutMS: -5})
					return err
				}(), boxapi.CodeValidationError, "timeout_ms must be positive"},
				{"create negative memory", func() error {
					_, err := svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", MemoryMB: -1})
					return err
				}(), boxapi.CodeValidationError, "memory_mb must be greater than 0"},
				{"create relative workdir", func() error {
					_, err := svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", Workdir: "tmp"})
					return err
				}(), boxapi.CodeValidationError, "workdir must be an absolute path (starting with /)"},
				{"exec missing box", func() error {
					_, err := svc.StartExec(ctx, "ghost", boxapi.ExecRequest{Cmd: []string{"true"}})
					return err
				}(), boxapi.CodeBoxNotFound, "Box 'ghost' not found"},
				{"remove missing", svc.Remove(ctx, "ghost", true), boxapi.CodeBoxNotFound, "Box 'ghost' not found"},
				{"list execs missing", func() error { _, err := svc.ListExecs(ctx, "ghost"); return err }(),
					boxapi.CodeBoxNotFound, "Box 'ghost' not found"},
				{"images without a store", func() error { _, err := svc.Images(ctx); return err }(),
					boxapi.CodeRuntimeError, "no image store configured (use WithImages)"},
			} {
				if got := boxapi.ErrorCode(tc.err); got != tc.code {
					t.Errorf("%s: code %s (%v), want %s", tc.what, got, tc.err, tc.code)
				}
				if tc.err != nil && boxapi.ErrorMessage(tc.err) != tc.msg {
					t.Errorf("%s: message %q, want %q", tc.what, boxapi.ErrorMessage(tc.err), tc.msg)
				}
			}
			all, err := svc.List(ctx, boxapi.BoxFilter{Status: "all"})
			if err != nil || len(all) != 1 {
				t.Errorf("List(all) = %d boxes, %v", len(all), err)
			}
			none, err := svc.List(ctx, boxapi.BoxFilter{Status: "bogus"})
			if err != nil || len(none) != 0 {
				t.Errorf("List(bogus) = %d boxes, %v", len(none), err)
			}
		}},
		{"Exec", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{Env: map[string]string{"BOXV": "box"}})
			var out, errb strings.Builder
			e, err := svc.Exec(ctx, b.ID, boxapi.ExecRequest{
				Cmd: []string{"sh", "-c", `echo "out $BOXV $EXV"; echo err >&2; cat; exit 3`},
				Env: map[string]string{"EXV": "exec"}, Stdin: strings.NewReader("from stdin\n"),
			}, &out, &errb)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := out.String(), "out box exec\nfrom stdin\n"; got != want {
				t.Errorf("stdout = %q, want %q", got, want)
			}
			if got := errb.String(); got != "err\n" {
				t.Errorf("stderr = %q", got)
			}
			if exitOf(e) != 3 || e.Status != boxapi.ExecFailed || e.FinishedAt.IsZero() || e.BoxID != b.ID {
				t.Errorf("exec = %+v", e)
			}
			e2, err := svc.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"true"}}, nil, nil)
			if err != nil || e2.Status != boxapi.ExecSucceeded || exitOf(e2) != 0 {
				t.Errorf("true: %+v, %v", e2, err)
			}
			execs, err := svc.ListExecs(ctx, b.ID)
			if err != nil || len(execs) != 2 || execs[0].ID != e2.ID || execs[1].ID != e.ID {
				t.Errorf("ListExecs = %v, %v; want newest first", execs, err)
			}
			got, err := svc.GetExec(ctx, e.ID)
			if err != nil || exitOf(got) != 3 || got.Env["EXV"] != "exec" {
				t.Errorf("GetExec = %+v, %v", got, err)
			}
		}},
		{"ExecEvents", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			e, err := svc.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.02; done; echo oops >&2"}})
			if err != nil {
				t.Fatal(err)
			}
			if e.Status != boxapi.ExecRunning || e.ExitCode != nil {
				t.Errorf("StartExec = %+v", e)
			}
			var evs []boxapi.ExecEvent
			if err := svc.ExecEvents(ctx, e.ID, -1, func(ev boxapi.ExecEvent) error { evs = append(evs, ev); return nil }); err != nil {
				t.Fatal(err)
			}
			var stdout strings.Builder
			for i, ev := range evs {
				if ev.Seq != int64(i) {
					t.Errorf("event %d has seq %d", i, ev.Seq)
				}
				if ev.Kind == boxapi.KindLog && ev.Stream == "stdout" {
					stdout.WriteString(ev.Data)
				}
			}
			last := evs[len(evs)-1]
			if info, ok := last.Exit(); !ok || info.ExitCode == nil || *info.ExitCode != 0 {
				t.Errorf("last event = %+v, want exit 0", last)
			}
			if got := stdout.String(); got != "line1\nline2\nline3\nline4\nline5\n" {
				t.Errorf("stdout = %q", got)
			}
			// Resume after the first event: only later events.
			var resumed []int64
			if err := svc.ExecEvents(ctx, e.ID, 0, func(ev boxapi.ExecEvent) error { resumed = append(resumed, ev.Seq); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(resumed) != len(evs)-1 || resumed[0] != 1 {
				t.Errorf("resumed after 0: seqs %v", resumed)
			}
			// An error from fn stops the stream and comes back.
			stop := errors.New("stop")
			if err := svc.ExecEvents(ctx, e.ID, -1, func(boxapi.ExecEvent) error { return stop }); !errors.Is(err, stop) {
				t.Errorf("fn error: got %v", err)
			}
			w, err := svc.WaitExec(ctx, e.ID)
			if err != nil || w.Status != boxapi.ExecSucceeded {
				t.Errorf("WaitExec = %+v, %v", w, err)
			}
		}},
		{"CancelAndTimeout", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			e, err := svc.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "30"}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := svc.CancelExec(ctx, e.ID)
			if err != nil || c.Status != boxapi.ExecCanceled {
				t.Errorf("CancelExec = %+v, %v", c, err)
			}
			w, err := svc.WaitExec(ctx, e.ID)
			if err != nil || w.Status != boxapi.ExecCanceled {
				t.Errorf("WaitExec after cancel = %+v, %v", w, err)
			}
			_, err = svc.CancelExec(ctx, e.ID)
			wantKind(t, "cancel twice", err, boxapi.ErrConflict, boxapi.CodeExecAlreadyFinished)

			start := time.Now()
			te, err := svc.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "30"}, TimeoutMS: 300}, nil, nil)
			if err != nil || te.Status != boxapi.ExecFailed || te.ErrorMessage == "" || time.Since(start) > 15*time.Second {
				t.Errorf("timeout exec = %+v, %v after %v", te, err, time.Since(start))
			}

			// Canceling the caller's ctx cancels the exec.
			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(300*time.Millisecond, cancel)
			ce, err := svc.Exec(cctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "30"}}, nil, nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Exec with canceled ctx: %v", err)
			}
			if ce == nil || ce.Status != boxapi.ExecCanceled {
				t.Errorf("Exec with canceled ctx returned %+v", ce)
			}
			if ce != nil {
				if got, err := svc.GetExec(ctx, ce.ID); err != nil || got.Status != boxapi.ExecCanceled {
					t.Errorf("exec after ctx cancel = %+v, %v", got, err)
				}
			}
		}},
		{"Files", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			data := make([]byte, 3<<20)
			rand.Read(data)
			if err := svc.UploadFile(ctx, b.ID, "/root/sub/dir/blob.bin", bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := svc.DownloadFile(ctx, b.ID, "/root/sub/dir/blob.bin", &got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("download: %d bytes, want the %d uploaded", got.Len(), len(data))
			}
			err := svc.DownloadFile(ctx, b.ID, "/root/missing.txt", io.Discard)
			if err == nil {
				t.Errorf("download of a missing file: no error")
			}

			var in bytes.Buffer
			tw := tar.NewWriter(&in)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "proj/", Mode: 0o755})
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "proj/a.txt", Mode: 0o644, Size: 5})
			tw.Write([]byte("hello"))
			tw.Close()
			if err := svc.CopyIn(ctx, b.ID, "/root/work", &in); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if _, err := svc.Exec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"cat", "work/proj/a.txt"}}, &out, nil); err != nil || out.String() != "hello" {
				t.Errorf("file from CopyIn: %q, %v", out.String(), err)
			}
			var tarOut bytes.Buffer
			if err := svc.CopyOut(ctx, b.ID, "/root/work/proj", &tarOut); err != nil {
				t.Fatal(err)
			}
			names := map[string]string{}
			tr := tar.NewReader(&tarOut)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				body, _ := io.ReadAll(tr)
				names[strings.TrimSuffix(h.Name, "/")] = string(body)
			}
			if _, ok := names["proj"]; !ok || names["proj/a.txt"] != "hello" {
				t.Errorf("CopyOut entries = %v", names)
			}
			err = svc.CopyOut(ctx, b.ID, "/root/nothing", io.Discard)
			if !errors.Is(err, boxapi.ErrNotFound) && boxapi.ErrorCode(err) != boxapi.CodeRuntimeError {
				t.Errorf("CopyOut missing: %v", err)
			}
		}},
		{"Run", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			res, err := svc.Run(ctx, boxapi.RunRequest{Image: "busybox", Cmd: []string{"sh", "-c", "echo $X; echo e >&2; exit 7"}, Env: map[string]string{"X": "run"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stdout != "run\n" || res.Stderr != "e\n" || res.ExitCode == nil || *res.ExitCode != 7 {
				t.Errorf("Run = %+v", res)
			}
			if boxes, _ := svc.List(ctx, boxapi.BoxFilter{}); len(boxes) != 0 {
				t.Errorf("Run left %d boxes", len(boxes))
			}
			_, err = svc.Run(ctx, boxapi.RunRequest{Image: "busybox"})
			wantKind(t, "Run without cmd", err, boxapi.ErrInvalid, boxapi.CodeValidationError)
		}},
		{"Stats", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{MemoryMB: 300})
			if _, err := svc.StartExec(ctx, b.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", "while :; do :; done"}}); err != nil {
				t.Fatal(err)
			}
			st, err := svc.Stats(ctx, b.ID)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			if st.BoxID != b.ID || st.Processes < 1 || st.MemoryBytes <= 0 || st.MemoryLimitBytes != 300<<20 || st.CPUTimeNS <= 0 || st.Time.IsZero() {
				t.Errorf("Stats = %+v", st)
			}
			// The stream delivers samples until the box stops, then ends with nil.
			var n int
			stopped := make(chan error, 1)
			err = svc.StatsStream(ctx, b.ID, boxapi.StatsOptions{Interval: 100 * time.Millisecond}, func(st *boxapi.Stats) error {
				if n++; n == 3 {
					go func() { _, err := svc.Stop(ctx, b.ID); stopped <- err }()
				}
				return nil
			})
			if err != nil || n < 3 {
				t.Errorf("StatsStream = %v after %d samples; want nil after at least 3", err, n)
			}
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			_, err = svc.Stats(ctx, b.ID)
			wantKind(t, "Stats of a stopped box", err, boxapi.ErrConflict, boxapi.CodeBoxNotRunning)
			err = svc.StatsStream(ctx, b.ID, boxapi.StatsOptions{}, func(*boxapi.Stats) error { return nil })
			wantKind(t, "StatsStream of a stopped box", err, boxapi.ErrConflict, boxapi.CodeBoxNotRunning)
			_, err = svc.Stats(ctx, "ghost")
			wantKind(t, "Stats of a missing box", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
		}},
		{"Lifetime", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			plain := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			if lt, err := svc.Lifetime(ctx, plain.ID); err != nil || lt.TTL != 0 || lt.IdleTimeout != 0 || lt.OnExpire != boxapi.ExpireStop || lt.ExpiresAt != nil {
				t.Errorf("Lifetime without limits = %+v, %v", lt, err)
			}
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{TTL: 800 * time.Millisecond, IdleTimeout: time.Minute, OnExpire: boxapi.ExpireRemove})
			lt, err := svc.Lifetime(ctx, b.ID)
			if err != nil || lt.TTL != 800*time.Millisecond || lt.IdleTimeout != time.Minute || lt.OnExpire != boxapi.ExpireRemove || lt.ExpiresAt == nil || lt.IdleExpiresAt == nil {
				t.Fatalf("Lifetime = %+v, %v", lt, err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := svc.Get(ctx, b.ID)
				if boxapi.ErrorCode(err) == boxapi.CodeBoxNotFound {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("box still there 10 s after an 800 ms ttl (%v)", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			_, err = svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", TTL: -time.Second})
			wantKind(t, "negative ttl", err, boxapi.ErrInvalid, boxapi.CodeValidationError)
			_, err = svc.Create(ctx, boxapi.BoxSpec{Image: "busybox", OnExpire: "explode"})
			wantKind(t, "bad on_expire", err, boxapi.ErrInvalid, boxapi.CodeValidationError)
			_, err = svc.Lifetime(ctx, "ghost")
			wantKind(t, "Lifetime of a missing box", err, boxapi.ErrNotFound, boxapi.CodeBoxNotFound)
		}},
		{"GC", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			keep := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			if _, err := svc.Stop(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if n, err := svc.GC(ctx, time.Hour); err != nil || n != 0 {
				t.Errorf("GC(1h) = %d, %v; want 0", n, err)
			}
			time.Sleep(5 * time.Millisecond)
			if n, err := svc.GC(ctx, 0); err != nil || n != 1 {
				t.Errorf("GC(0) = %d, %v; want 1", n, err)
			}
			if _, err := svc.Get(ctx, keep.ID); err != nil {
				t.Errorf("running box gone after GC: %v", err)
			}
		}},
		{"Attach", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			var out boxruntest.SyncBuffer
			code, err := svc.Attach(ctx, b.ID, boxapi.AttachRequest{Cmd: []string{"sh", "-c", "echo tty:$TERM; exit 3"}, Stdout: &out})
			if err != nil || code != 3 {
				t.Errorf("Attach = %d, %v; want 3", code, err)
			}
			if !strings.Contains(out.String(), "tty:xterm-256color") {
				t.Errorf("attach output %q", out.String())
			}
			// An interactive shell fed by Stdin.
			pr, pw := io.Pipe()
			var sh boxruntest.SyncBuffer
			done := make(chan struct{})
			var shCode int
			var shErr error
			go func() {
				defer close(done)
				shCode, shErr = svc.Attach(ctx, b.ID, boxapi.AttachRequest{Shell: "/bin/sh", Stdin: pr, Stdout: &sh, Size: boxapi.TermSize{Rows: 30, Cols: 100}})
			}()
			io.WriteString(pw, "stty size; echo hel''lo\n")
			waitFor(t, func() bool { return strings.Contains(sh.String(), "hello") })
			io.WriteString(pw, "exit 5\n")
			<-done
			if shErr != nil || shCode != 5 {
				t.Errorf("shell = %d, %v; want 5", shCode, shErr)
			}
			if !strings.Contains(sh.String(), "30 100") {
				t.Errorf("shell output %q lacks the size 30 100", sh.String())
			}
			pw.Close()
		}},
		{"Subscribe", func(t *testing.T, ctx context.Context, svc boxapi.Service) {
			sub, err := svc.Subscribe(ctx, boxapi.EventFilter{Types: []boxapi.EventType{boxapi.EventBoxCreated, boxapi.EventBoxStopped}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			b := mustCreate(t, ctx, svc, boxapi.BoxSpec{})
			if _, err := svc.Stop(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			var got []boxapi.EventType
			for len(got) < 2 {
				select {
				case ev, ok := <-sub.C():
					if !ok {
						t.Fatalf("subscription ended: %v", sub.Err())
					}
					if ev.BoxID != b.ID || ev.Box == nil || ev.Seq == 0 {
						t.Errorf("event %+v", ev)
					}
					got = append(got, ev.Type)
				case <-time.After(10 * time.Second):
					t.Fatalf("events so far %v", got)
				}
			}
			if got[0] != boxapi.EventBoxCreated || got[1] != boxapi.EventBoxStopped {
				t.Errorf("events %v", got)
			}
			// Replay from the start gives the same journaled events.
			rs, err := svc.Subscribe(ctx, boxapi.EventFilter{BoxID: b.ID, Replay: true, AfterSeq: 0})
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			select {
			case ev := <-rs.C():
				if ev.Type != boxapi.EventBoxCreated {
					t.Errorf("first replayed event %s", ev.Type)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no replay")
			}
			if err := sub.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			sub.Close() // idempotent
		}},
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
