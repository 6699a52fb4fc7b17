package boxruntest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/sandbox"
)

// testExec covers Exec and Process on the shared sandbox (non-TTY).
func (s *suite) testExec(t *testing.T) {
	const wd = "/work/dir" // the shared box's workdir, absent from the image

	t.Run("ExitCodes", func(t *testing.T) {
		for _, code := range []int{0, 1, 42} {
			r := s.run(t, s.shared, sh(wd, fmt.Sprintf("exit %d", code)))
			if r.code != code {
				t.Errorf("exit %d: got code %d", code, r.code)
			}
		}
		if r := s.run(t, s.shared, sh(wd, "kill -9 $$")); r.code != 128+9 {
			t.Errorf("killed by SIGKILL: got code %d, want 137", r.code)
		}
	})

	t.Run("Stdio", func(t *testing.T) {
		r := s.run(t, s.shared, sh(wd, "echo out; echo err >&2; echo out2"))
		if got, want := r.stdout, "out\nout2\n"; got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
		if got, want := r.stderr, "err\n"; got != want {
			t.Errorf("stderr = %q, want %q", got, want)
		}
	})

	t.Run("LargeOutput", func(t *testing.T) {
		// 8 MiB on stdout while 1 MiB goes to stderr concurrently.
		const outN, errN = 8 << 20, 1 << 20
		spec := sh(wd, fmt.Sprintf("yes err | head -c %d >&2 & yes 0123456789abcdef | head -c %d; wait", errN, outN))
		out, errOut := newSumWriter(), newSumWriter()
		spec.Stdout, spec.Stderr = out, errOut
		p, err := s.d.Exec(t.Context(), s.shared, spec)
		if err != nil {
			t.Fatal(err)
		}
		if code, err := waitProc(t, p, waitLimit); code != 0 || err != nil {
			t.Fatalf("Wait = %d, %v", code, err)
		}
		for _, c := range []struct {
			name string
			w    *sumWriter
			line string
			n    int
		}{{"stdout", out, "0123456789abcdef\n", outN}, {"stderr", errOut, "err\n", errN}} {
			want := sha256.Sum256([]byte(strings.Repeat(c.line, c.n/len(c.line)+1)[:c.n]))
			if c.w.n != int64(c.n) || !bytes.Equal(c.w.h.Sum(nil), want[:]) {
				t.Errorf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", c.name, c.w.n, c.w.h.Sum(nil), c.n, want)
			}
		}
	})

	t.Run("Stdin", func(t *testing.T) {
		in := make([]byte, 1<<20)
		if _, err := rand.Read(in); err != nil {
			t.Fatal(err)
		}
		r := s.run(t, s.shared, sandbox.ProcessSpec{Cmd: []string{"cat"}, Dir: wd, Stdin: bytes.NewReader(in)})
		if r.code != 0 || r.stdout != string(in) {
			t.Errorf("cat of 1 MiB of binary stdin: code %d, %d bytes out, equal %v", r.code, len(r.stdout), r.stdout == string(in))
		}
	})

	t.Run("StdinNil", func(t *testing.T) {
		r := s.run(t, s.shared, sandbox.ProcessSpec{Cmd: []string{"cat"}, Dir: wd})
		if r.code != 0 || r.stdout != "" {
			t.Errorf("cat with nil stdin: code %d, stdout %q", r.code, r.stdout)
		}
	})

	t.Run("StdinUnread", func(t *testing.T) {
		// The process exits without reading an endless stdin: Wait returns.
		spec := sandbox.ProcessSpec{Cmd: []string{"true"}, Dir: wd, Stdin: zeroReader{}}
		if r := s.run(t, s.shared, spec); r.code != 0 {
			t.Errorf("code %d", r.code)
		}
	})

	t.Run("Env", func(t *testing.T) {
		spec := sh(wd, `echo "$BOXRUN_TEST $OVERRIDE $EXTRA"`)
		spec.Env = []string{"OVERRIDE=exec", "EXTRA=x"}
		if got, want := s.run(t, s.shared, spec).stdout, "box exec x\n"; got != want {
			t.Errorf("stdout = %q, want %q (sandbox env, then exec env)", got, want)
		}
	})

	t.Run("Workdir", func(t *testing.T) {
		for _, dir := range []string{wd, "/tmp"} {
			got := strings.TrimSuffix(s.run(t, s.shared, sandbox.ProcessSpec{Cmd: []string{"pwd"}, Dir: dir}).stdout, "\n")
			if got != dir && !(s.h.HostProcesses && strings.HasSuffix(got, dir)) {
				t.Errorf("pwd in %s printed %q", dir, got)
			}
		}
	})

	t.Run("ErrMissingProgram", func(t *testing.T) {
		p, err := s.d.Exec(t.Context(), s.shared, sandbox.ProcessSpec{Cmd: []string{"boxrun-no-such-program"}, Dir: wd})
		if err == nil {
			code, werr := p.Wait()
			t.Fatalf("Exec of a missing program succeeded (Wait: %d, %v); want an Exec error", code, werr)
		}
	})

	t.Run("Kill", func(t *testing.T) {
		for _, c := range []struct {
			spec sandbox.ProcessSpec
			sig  syscall.Signal
		}{
			{sandbox.ProcessSpec{Cmd: []string{"sleep", "30"}, Dir: wd}, syscall.SIGKILL},
			{sh(wd, "sleep 30; echo not reached"), syscall.SIGKILL},
			{sh(wd, "sleep 30; echo not reached"), syscall.SIGTERM},
		} {
			var out SyncBuffer
			c.spec.Stdout = &out
			p, err := s.d.Exec(t.Context(), s.shared, c.spec)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let sh start its child
			start := time.Now()
			if err := p.Signal(t.Context(), c.sig); err != nil {
				t.Fatalf("Signal: %v", err)
			}
			code, err := waitProc(t, p, quickLimit)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if want := 128 + int(c.sig); code != want {
				t.Errorf("%q killed by %v: code %d, want %d", c.spec.Cmd, c.sig, code, want)
			}
			if el := time.Since(start); el > quickLimit {
				t.Errorf("Wait took %v after the signal", el)
			}
			if out.String() != "" {
				t.Errorf("stdout %q", out.String())
			}
		}
	})

	t.Run("BackgroundChildHoldsOutput", func(t *testing.T) {
		r := s.runWithin(t, s.shared, sh(wd, "sleep 30 & echo hi"), quickLimit)
		if r.code != 0 || r.stdout != "hi\n" {
			t.Errorf("got code %d, stdout %q; want 0, %q", r.code, r.stdout, "hi\n")
		}
	})

	t.Run("ChattyBackgroundChild", func(t *testing.T) {
		r := s.runWithin(t, s.shared, sh(wd, "while :; do echo spam; sleep 0.05; done & echo hi"), quickLimit)
		if r.code != 0 || !strings.Contains(r.stdout, "hi\n") {
			t.Errorf("got code %d, stdout %q; want 0 and hi", r.code, r.stdout)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				var out SyncBuffer
				spec := sh(wd, `echo "$0"; cat`)
				spec.Cmd = append(spec.Cmd, fmt.Sprint(i))
				spec.Stdin = strings.NewReader(fmt.Sprintf("data-%d\n", i))
				spec.Stdout = &out
				p, err := s.d.Exec(t.Context(), s.shared, spec)
				if err != nil {
					t.Errorf("Exec %d: %v", i, err)
					return
				}
				code, err := p.Wait()
				if want := fmt.Sprintf("%d\ndata-%d\n", i, i); code != 0 || err != nil || out.String() != want {
					t.Errorf("exec %d: code %d, err %v, stdout %q; want 0, nil, %q", i, code, err, out.String(), want)
				}
			})
		}
		wg.Wait()
	})

	t.Run("WaitTwice", func(t *testing.T) {
		p, err := s.d.Exec(t.Context(), s.shared, sh(wd, "exit 3"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if code, err := waitProc(t, p, waitLimit); code != 3 || err != nil {
				t.Errorf("Wait #%d = %d, %v; want 3, nil", i+1, code, err)
			}
		}
	})
}

// testTTY covers TTY processes on the shared sandbox.
func (s *suite) testTTY(t *testing.T) {
	const wd = "/work/dir"

	t.Run("SizeAndResize", func(t *testing.T) {
		inR, inW := io.Pipe()
		defer inW.Close()
		var out SyncBuffer
		spec := sh(wd, "test -t 0 && test -t 1 && echo isatty; stty size; read x; stty size")
		spec.TTY, spec.Size, spec.Stdin, spec.Stdout = true, boxrun.TermSize{Rows: 30, Cols: 100}, inR, &out
		p, err := s.d.Exec(t.Context(), s.shared, spec)
		if err != nil {
			t.Fatal(err)
		}
		if !out.WaitFor("30 100", waitLimit) {
			t.Fatalf("no initial size in output %q", out.String())
		}
		if err := p.Resize(t.Context(), boxrun.TermSize{Rows: 40, Cols: 120}); err != nil {
			t.Fatalf("Resize: %v", err)
		}
		if _, err := io.WriteString(inW, "go\n"); err != nil {
			t.Fatal(err)
		}
		code, err := waitProc(t, p, waitLimit)
		if code != 0 || err != nil {
			t.Errorf("Wait = %d, %v", code, err)
		}
		for _, want := range []string{"isatty", "30 100", "40 120"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output %q lacks %q", out.String(), want)
			}
		}
	})

	t.Run("DefaultSizeNilStdin", func(t *testing.T) {
		spec := sh(wd, "stty size")
		spec.TTY = true
		r := s.run(t, s.shared, spec)
		if r.code != 0 || !strings.Contains(r.stdout, "24 80") {
			t.Errorf("code %d, output %q; want 0 and 24 80", r.code, r.stdout)
		}
	})

	t.Run("BackgroundChildHoldsTerminal", func(t *testing.T) {
		// The child ignores the SIGHUP the terminal sends when sh exits.
		spec := sh(wd, "trap '' HUP; sleep 30 & echo hi")
		spec.TTY = true
		r := s.runWithin(t, s.shared, spec, quickLimit)
		if r.code != 0 || !strings.Contains(r.stdout, "hi") {
			t.Errorf("code %d, output %q; want 0 and hi", r.code, r.stdout)
		}
	})

	t.Run("StdinEOF", func(t *testing.T) {
		// EOF of Stdin reaches cat as the terminal's EOF character, also
		// in the middle of a line.
		for _, in := range []string{"hello", "hello\n"} {
			spec := sandbox.ProcessSpec{Cmd: []string{"cat"}, Dir: wd, TTY: true, Stdin: strings.NewReader(in)}
			r := s.run(t, s.shared, spec)
			if r.code != 0 || !strings.Contains(r.stdout, "hello") {
				t.Errorf("cat on a terminal with stdin %q: code %d, output %q; want 0 and hello", in, r.code, r.stdout)
			}
		}
	})

	t.Run("ExitCode", func(t *testing.T) {
		spec := sh(wd, "exit 7")
		spec.TTY = true
		if r := s.run(t, s.shared, spec); r.code != 7 {
			t.Errorf("code %d, want 7", r.code)
		}
	})
}

// sumWriter hashes and counts what is written to it.
type sumWriter struct {
	h hash.Hash
	n int64
}

func newSumWriter() *sumWriter { return &sumWriter{h: sha256.New()} }

func (w *sumWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// zeroReader is an endless stream of zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
