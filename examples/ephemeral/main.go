// Command ephemeral runs one-shot commands with Run: each gets a fresh box
// that is removed afterwards, whatever happens, and the collected output.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	for _, script := range []string{
		"echo 2+3 | bc 2>/dev/null || echo $((2+3))",
		"echo to stderr >&2; exit 2",
	} {
		res, err := svc.Run(ctx, boxrun.RunRequest{
			Image:     exampleutil.Image(),
			Cmd:       []string{"sh", "-c", script},
			CPU:       1,
			MemoryMB:  256,
			TimeoutMS: 30_000,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exit %d, stdout %q, stderr %q\n", *res.ExitCode, res.Stdout, res.Stderr)
	}
	boxes, err := svc.List(ctx, boxrun.BoxFilter{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "boxes left behind: %d\n", len(boxes))
	return nil
}
