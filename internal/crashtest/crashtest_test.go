package crashtest_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/boxrun/boxrun/internal/crashtest"
)

const childEnv = "BOXRUN_CRASHTEST_CHILD"

// TestChild is not a test: it is the child the other tests start. It
// prints a few lines and, unless told to exit, waits to be killed.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for TestStart")
	}
	fmt.Println("HELLO")
	fmt.Println("READY a b")
	fmt.Println("AFTER")
	if mode == "exit" {
		return
	}
	time.Sleep(time.Hour)
}

// A child that waits is found ready, killed, and its remaining lines read;
// one that exits before the awaited line is ErrExited.
func TestStart(t *testing.T) {
	c := crashtest.Start(t, "TestChild", []string{childEnv + "=wait"})
	f := c.MustAwait(t, "the child", "READY", 3, time.Minute)
	if f[1] != "a" || f[2] != "b" {
		t.Fatalf("READY fields %q", f)
	}
	if _, err := c.Await("NEVER", 200*time.Millisecond); !errors.Is(err, crashtest.ErrTimeout) {
		t.Fatalf("await of a line that never comes: %v, want ErrTimeout", err)
	}
	c.Kill()
	if got := c.Cmd.ProcessState.String(); got != "signal: killed" {
		t.Fatalf("child ended with %s, want killed", got)
	}
	c.Rest() // returns once the killed child's stdout ended

	c = crashtest.Start(t, "TestChild", []string{childEnv + "=exit"}, "-test.v")
	if _, err := c.Await("NEVER", time.Minute); !errors.Is(err, crashtest.ErrExited) {
		t.Fatalf("await after the child exited: %v, want ErrExited", err)
	}
}
