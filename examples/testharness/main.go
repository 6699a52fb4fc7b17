// Command testharness embeds BoxRun in a test harness: one box per suite,
// each case a command with the output and exit code it must produce. The
// same run function serves a real Manager (main) and a Go test
// (main_test.go uses boxruntest.NewManager, or any boxrun.Service: an
// in-process Manager, or client.New(...) for a remote server).
package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

// testCase is one check run in the box.
type testCase struct {
	name     string
	cmd      string // run with sh -c in /root
	stdin    string
	want     string // expected stdout
	wantExit int
}

// suite is the harness's table.
func suite() []testCase {
	return []testCase{
		{name: "echo", cmd: "echo hello", want: "hello\n"},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "shout\n", want: "SHOUT\n"},
		{name: "env", cmd: "echo $SUITE", want: "harness\n"},
		{name: "exit code", cmd: "exit 4", wantExit: 4},
		{name: "state persists", cmd: "cat marker.txt", want: "from setup\n"},
	}
}

// run sets up one box, runs the suite and prints a PASS/FAIL line per case;
// it fails when a case fails.
func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	spec := exampleutil.SmallBox()
	spec.Env = map[string]string{"SUITE": "harness"}
	box, err := svc.Create(ctx, spec)
	if err != nil {
		return err
	}
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)
	// Fixture: a file every case can see.
	if err := svc.UploadFile(ctx, box.ID, "/root/marker.txt", strings.NewReader("from setup\n")); err != nil {
		return err
	}
	failed := 0
	for _, tc := range suite() {
		var out, errb strings.Builder
		req := boxrun.ExecRequest{Cmd: []string{"sh", "-c", tc.cmd}, TimeoutMS: 10_000}
		if tc.stdin != "" {
			req.Stdin = strings.NewReader(tc.stdin)
		}
		e, err := svc.Exec(ctx, box.ID, req, &out, &errb)
		if err != nil {
			return fmt.Errorf("case %s: %w", tc.name, err)
		}
		code := -1
		if e.ExitCode != nil {
			code = *e.ExitCode
		}
		if code != tc.wantExit || out.String() != tc.want {
			failed++
			fmt.Fprintf(stdout, "FAIL %s: exit %d (want %d), stdout %q (want %q), stderr %q\n",
				tc.name, code, tc.wantExit, out.String(), tc.want, errb.String())
			continue
		}
		fmt.Fprintf(stdout, "PASS %s\n", tc.name)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d cases failed", failed, len(suite()))
	}
	return nil
}
