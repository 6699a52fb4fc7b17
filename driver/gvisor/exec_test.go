package gvisor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

func TestDriver_Exec(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "exec", Image: img, Env: []string{"A=img", "B=img", "A=box"}, Workdir: "/root"})

	t.Run("ExitCodes", func(t *testing.T) {
		for _, want := range []int{0, 1, 42, 127, 128, 255} {
			if _, _, got := run(t, d, h, nil, "sh", "-c", "exit "+strconv.Itoa(want)); got != want {
				t.Errorf("exit %d: got %d", want, got)
			}
		}
	})
	t.Run("Streams", func(t *testing.T) {
		out, errOut, code := run(t, d, h, strings.NewReader("in1\nin2\n"), "sh", "-c", "cat; echo e >&2")
		if out != "in1\nin2\n" || errOut != "e\n" || code != 0 {
			t.Fatalf("out %q err %q code %d", out, errOut, code)
		}
	})
	t.Run("NilStdinIsEOF", func(t *testing.T) {
		if out, _, code := run(t, d, h, nil, "cat"); out != "" || code != 0 {
			t.Fatalf("out %q code %d", out, code)
		}
	})
	t.Run("EnvAndDir", func(t *testing.T) {
		var out bytes.Buffer
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo $A $B $C; pwd"}, Env: []string{"C=exec", "B=exec"}, Dir: "/tmp", Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil {
			t.Fatalf("wait: %d %v", code, err)
		}
		if got, want := out.String(), "box exec exec\n/tmp\n"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("ErrMissingProgram", func(t *testing.T) {
		var stderr bytes.Buffer
		_, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"/no/such/program"}, Stderr: &stderr})
		if !errors.Is(err, boxapi.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if stderr.Len() != 0 {
			t.Fatalf("runsc's error leaked to the process stderr: %q", stderr.String())
		}
	})
	t.Run("ErrBadDir", func(t *testing.T) {
		_, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"true"}, Dir: "/nonexistent"})
		if !errors.Is(err, boxapi.ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
	t.Run("ErrCanceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := d.Exec(cctx, h, sandbox.ProcessSpec{Cmd: []string{"touch", "/tmp/canceled"}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if out, _, _ := run(t, d, h, nil, "sh", "-c", "ls /tmp/canceled 2>/dev/null; true"); out != "" {
			t.Fatal("the command ran")
		}
	})
	t.Run("BackgroundChildDoesNotBlockWait", func(t *testing.T) {
		start := time.Now()
		out, _, code := run(t, d, h, nil, "sh", "-c", "sleep 30 & echo started")
		if out != "started\n" || code != 0 {
			t.Fatalf("out %q code %d", out, code)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("Wait took %v", el)
		}
	})
	t.Run("SignalGroup", func(t *testing.T) {
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "sleep 61 & sleep 61; echo no"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait()
		if err != nil || code != 128+9 {
			t.Fatalf("wait: %d %v", code, err)
		}
		// The whole group went: no sleep is left.
		if out, _, _ := run(t, d, h, nil, "sh", "-c", "ps -o args | grep -c 'sleep 6[1]' || true"); strings.TrimSpace(out) != "0" {
			t.Fatalf("sleepers left: %q", out)
		}
		if err := p.Signal(ctx, syscall.SIGTERM); err != nil {
			t.Fatalf("signal after exit: %v", err)
		}
		if code2, _ := p.Wait(); code2 != code {
			t.Fatalf("second Wait: %d", code2)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := strings.Repeat("x", 1000*(i+1))
				if out, _, code := run(t, d, h, strings.NewReader(want), "cat"); out != want || code != 0 {
					t.Errorf("exec %d: %d bytes, code %d", i, len(out), code)
				}
			}()
		}
		wg.Wait()
	})
	t.Run("SlowWriterGetsEverything", func(t *testing.T) {
		// The writer is slower than the drain bound after exit: the output
		// the process wrote before exiting must still arrive in full.
		w := &slowWriter{delay: 150 * time.Millisecond}
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"head", "-c", "300000", "/dev/zero"}, Stdout: w})
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil || w.n != 300000 {
			t.Fatalf("code %d err %v: %d bytes, want 300000", code, err, w.n)
		}
	})
	t.Run("LargeOutput", func(t *testing.T) {
		var n countWriter
		p, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"head", "-c", "33554432", "/dev/zero"}, Stdout: &n})
		if err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); code != 0 || err != nil || n != 32<<20 {
			t.Fatalf("code %d err %v bytes %d", code, err, n)
		}
	})
}

func TestDriver_TTY(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t)
	img := &sandbox.Image{Ref: "busybox", Rootfs: busyboxRootfs(t)}
	h := create(t, d, sandbox.Spec{BoxID: "tty", Image: img})

	pr, pw := io.Pipe()
	out := &boxruntest.SyncBuffer{}
	p, err := d.Exec(ctx, h, sandbox.ProcessSpec{
		Cmd: []string{"sh", "-c", "stty size; read x; stty size; exit 3"}, TTY: true,
		Size: boxapi.TermSize{Rows: 33, Cols: 111}, Stdin: pr, Stdout: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "33 111") })
	if err := p.Resize(ctx, boxapi.TermSize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(pw, "go\n")
	code, err := p.Wait()
	if err != nil || code != 3 {
		t.Fatalf("wait: %d %v", code, err)
	}
	if !strings.Contains(out.String(), "50 132") {
		t.Fatalf("output %q lacks the new size", out.String())
	}
	pw.Close()

	// ^C reaches the foreground process through the terminal.
	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	out2 := &boxruntest.SyncBuffer{}
	p2, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "echo ready; sleep 30"}, TTY: true, Stdin: pr2, Stdout: out2})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out2.String(), "ready") })
	io.WriteString(pw2, "\x03")
	if code, err := p2.Wait(); err != nil || code == 0 {
		t.Fatalf("after ^C: %d %v", code, err)
	}
	// runsc's own error text does not reach the terminal output.
	var out3 boxruntest.SyncBuffer
	if _, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"/no/such/program"}, TTY: true, Stdout: &out3}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("TTY exec of a missing program: %v, want ErrInvalid", err)
	}
	if out3.String() != "" {
		t.Fatalf("runsc's error leaked to the terminal: %q", out3.String())
	}
	p3, err := d.Exec(ctx, h, sandbox.ProcessSpec{Cmd: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p3.Resize(ctx, boxapi.TermSize{Rows: 1, Cols: 1}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("resize of a non-TTY process: %v", err)
	}
	p3.Wait()
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type slowWriter struct {
	delay time.Duration
	n     int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	s.n += len(p)
	return len(p), nil
}
