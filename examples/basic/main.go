// Command basic shows the core of BoxRun: create a box from an image, run
// commands in it (a non-zero exit is data, not an error), and remove it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	box, err := svc.Create(ctx, boxrun.BoxSpec{
		Image:    exampleutil.Image(),
		Name:     "basic-example",
		CPU:      1,
		MemoryMB: 256,
		Env:      map[string]string{"GREETING": "hello"},
	})
	if err != nil {
		return err
	}
	// Remove the box whatever happens (force: it is running).
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)
	fmt.Fprintf(stdout, "box %s is %s\n", box.Name, box.Status)

	var out strings.Builder
	e, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{
		Cmd: []string{"sh", "-c", `echo "$GREETING from the box" | tr a-z A-Z`},
	}, &out, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exit %d: %s", *e.ExitCode, out.String())

	// A failing command: the error is in the record, not in err.
	e, err = svc.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "exit 3"}}, nil, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "second exec: status %s, exit %d\n", e.Status, *e.ExitCode)

	// Lookups accept the ID or the name; errors match with errors.Is.
	if _, err := svc.Get(ctx, "no-such-box"); err != nil {
		fmt.Fprintf(stdout, "lookup of a missing box: %v (not found: %v)\n", err, errors.Is(err, boxrun.ErrNotFound))
	}
	return nil
}
