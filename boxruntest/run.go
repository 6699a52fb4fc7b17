package boxruntest

import (
	"context"
	"testing"
	"time"

	"github.com/boxrun/boxrun/sandbox"
)

// DefaultRunLimit is Run's limit when it is given 0.
const DefaultRunLimit = 2 * time.Minute

// RunResult is the outcome of Run.
type RunResult struct {
	Code           int
	Stdout, Stderr string
}

// Run starts spec in the sandbox handle of d, waits for it for at most
// limit (0 means DefaultRunLimit; the limit also bounds the start) and
// returns its exit code and output; spec's Stdout and Stderr are replaced.
// A failed Exec or Wait, or a wait past limit, fails t with Fatal: call
// Run from the test's goroutine. It is the exec helper of the driver tests.
func Run(t testing.TB, d sandbox.Driver, handle string, spec sandbox.ProcessSpec, limit time.Duration) RunResult {
	t.Helper()
	if limit <= 0 {
		limit = DefaultRunLimit
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	var out, errOut SyncBuffer
	spec.Stdout, spec.Stderr = &out, &errOut
	p, err := d.Exec(ctx, handle, spec)
	if err != nil {
		t.Fatalf("Exec %q: %v", spec.Cmd, err)
	}
	code, err := waitProc(t, p, limit)
	if err != nil {
		t.Fatalf("Wait %q: %v", spec.Cmd, err)
	}
	return RunResult{code, out.String(), errOut.String()}
}
