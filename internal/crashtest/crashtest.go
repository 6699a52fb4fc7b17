// Package crashtest runs a crash test's child: the test binary re-executed
// to run one of its own tests (a server that sets something up, reports
// on stdout and waits), which the parent test then SIGKILLs to check what
// a restart finds.
//
// The child's test skips unless the variable the parent sets names its
// directory; that skip is a plain t.Skip (see internal/testenv).
package crashtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrExited is returned by Await when the child's stdout ended before the
// line it waited for.
var ErrExited = errors.New("the child exited")

// ErrTimeout is returned by Await when the line did not come in time.
var ErrTimeout = errors.New("the child did not answer in time")

// Child is a running child test process. Its stderr goes to the parent's;
// its stdout is read line by line, as fast as the child writes it (so an
// orphan of the child writing to it never blocks), for Await and Rest.
type Child struct {
	// Cmd is the child's process (started).
	Cmd *exec.Cmd

	mu    sync.Mutex
	lines []string      // read and not yet consumed
	ended bool          // stdout ended
	more  chan struct{} // signalled (capacity 1) on a line and at the end
}

// Start runs the test named test of this test binary as a child process
// with env added to the environment and args (such as "-test.v") added to
// its flags. The child is SIGKILLed at tb's end if it still runs.
func Start(tb testing.TB, test string, env []string, args ...string) *Child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^" + test + "$"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &Child{Cmd: cmd, more: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			c.signal()
		}
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
		c.signal()
	}()
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			c.Kill()
		}
	})
	return c
}

func (c *Child) signal() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// Await waits up to timeout for a line of the child's stdout whose first
// field is word and returns its fields; the lines before it are consumed.
// It fails with ErrExited when stdout ended first and ErrTimeout when the
// time ran out.
func (c *Child) Await(word string, timeout time.Duration) ([]string, error) {
	return c.AwaitAny(timeout, word)
}

// MustAwait is Await that fails tb, after killing the child, when the
// line does not come or has not n fields (n 0: any number). what names
// the child in the failure ("the server").
func (c *Child) MustAwait(tb testing.TB, what, word string, n int, timeout time.Duration) []string {
	tb.Helper()
	f, err := c.Await(word, timeout)
	if err == nil && n > 0 && len(f) != n {
		err = fmt.Errorf("%q has not %d fields", strings.Join(f, " "), n)
	}
	if err != nil {
		c.Kill()
		tb.Fatalf("%s did not get ready: %v", what, err)
	}
	return f
}

// AwaitAny is Await for a line whose first field is any of words.
func (c *Child) AwaitAny(timeout time.Duration, words ...string) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for len(c.lines) > 0 {
			f := strings.Fields(c.lines[0])
			c.lines = c.lines[1:]
			if len(f) > 0 && slices.Contains(words, f[0]) {
				c.mu.Unlock()
				return f, nil
			}
		}
		ended := c.ended
		c.mu.Unlock()
		if ended {
			return nil, fmt.Errorf("waiting for %s: %w", strings.Join(words, " or "), ErrExited)
		}
		select {
		case <-c.more:
		case <-deadline.C:
			return nil, fmt.Errorf("waiting for %s for %s: %w", strings.Join(words, " or "), timeout, ErrTimeout)
		}
	}
}

// Kill SIGKILLs the child and waits for it to exit, which closes its
// stdout: Rest then returns.
func (c *Child) Kill() {
	_ = c.Cmd.Process.Signal(syscall.SIGKILL)
	_ = c.Cmd.Wait()
}

// Rest waits for the child's stdout to end (Kill ends it) and returns the
// lines Await did not consume.
func (c *Child) Rest() []string {
	for {
		c.mu.Lock()
		if c.ended {
			rest := c.lines
			c.lines = nil
			c.mu.Unlock()
			return rest
		}
		c.mu.Unlock()
		<-c.more
	}
}
