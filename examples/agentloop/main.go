// Command agentloop is the shape of an AI coding agent's inner loop: a
// generator proposes a program, the program runs in a sandbox with a time
// limit, and the result (output, exit code, timeout) is fed back until the
// program is right. The generator here is a stand-in for a model.
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

// task is what the agent must achieve.
const (
	task = "print the 10th Fibonacci number"
	want = "55"
)

// attempt is the outcome of running one generated program.
type attempt struct {
	stdout, stderr string
	exitCode       int
	timedOut       bool
}

// generate stands in for a model: it proposes a program for the task given
// the feedback on the previous attempt ("" first).
func generate(n int, feedback string) string {
	switch n {
	case 1: // a bug: wrong variable
		return "a=0; b=1; i=0\nwhile [ $i -lt 10 ]; do t=$((a+b)); a=$b; b=$t; i=$((i+1)); done\necho $c\nexit 1\n"
	case 2: // an infinite loop: the time limit must stop it
		return "a=0; b=1\nwhile true; do t=$((a+b)); a=$b; b=$t; done\n"
	default: // fixed
		return "a=0; b=1; i=0\nwhile [ $i -lt 10 ]; do t=$((a+b)); a=$b; b=$t; i=$((i+1)); done\necho $a\n"
	}
}

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	// One box for the whole session: files persist between attempts.
	box, err := svc.Create(ctx, exampleutil.SmallBox())
	if err != nil {
		return err
	}
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)

	fmt.Fprintf(stdout, "task: %s\n", task)
	feedback := ""
	for n := 1; n <= 5; n++ {
		program := generate(n, feedback)
		name := fmt.Sprintf("attempt-%d.sh", n)
		if err := svc.UploadFile(ctx, box.ID, "/root/"+name, strings.NewReader(program)); err != nil {
			return err
		}
		a, err := execute(ctx, svc, box.ID, name)
		if err != nil {
			return err
		}
		switch {
		case a.timedOut:
			feedback = "the program did not finish within 1s"
		case a.exitCode != 0:
			feedback = fmt.Sprintf("exit code %d, output %q", a.exitCode, a.stdout)
		case strings.TrimSpace(a.stdout) != want:
			feedback = fmt.Sprintf("wrong answer %q", strings.TrimSpace(a.stdout))
		default:
			fmt.Fprintf(stdout, "attempt %d: correct: %s\n", n, strings.TrimSpace(a.stdout))
			return nil
		}
		fmt.Fprintf(stdout, "attempt %d: %s\n", n, feedback)
	}
	return fmt.Errorf("no correct program after 5 attempts")
}

// execute runs a generated program with a 1 s limit and collects its output.
func execute(ctx context.Context, svc boxrun.Service, box, script string) (attempt, error) {
	var out, errb strings.Builder
	e, err := svc.Exec(ctx, box, boxrun.ExecRequest{Cmd: []string{"sh", script}, TimeoutMS: 1000}, &out, &errb)
	if err != nil {
		return attempt{}, err
	}
	a := attempt{stdout: out.String(), stderr: errb.String()}
	if e.ExitCode != nil {
		a.exitCode = *e.ExitCode
	}
	// A timeout kills the command and fails the exec with a runtime error
	// message ("Command timed out after 1000 ms"); an ordinary non-zero exit
	// has none.
	a.timedOut = e.Status == boxrun.ExecFailed && e.ErrorMessage != ""
	return a, nil
}
