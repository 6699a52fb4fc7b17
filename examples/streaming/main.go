// Command streaming shows output arriving while a command runs: Exec writes
// each chunk to your writers as it is produced, and ExecEvents replays the
// persisted, numbered output of an exec (from the start or from a seq) to
// a late reader.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/examples/internal/exampleutil"
)

func main() { exampleutil.Main(run) }

func run(ctx context.Context, svc boxrun.Service, stdout io.Writer) error {
	box, err := svc.Create(ctx, exampleutil.SmallBox())
	if err != nil {
		return err
	}
	defer svc.Remove(context.WithoutCancel(ctx), box.ID, true)

	// 1. Live: a pipe turns the stream into lines as they arrive.
	pr, pw := io.Pipe()
	start := time.Now()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	type result struct {
		e   *boxrun.Exec
		err error
	}
	done := make(chan result, 1)
	go func() {
		e, err := svc.Exec(ctx, box.ID, boxrun.ExecRequest{
			Cmd: []string{"sh", "-c", "for i in 1 2 3; do echo step $i; sleep 0.2; done; echo warning >&2"},
		}, pw, nil)
		pw.Close()
		done <- result{e, err}
	}()
	n := 0
	for line := range lines {
		n++
		// Each line is printed while the command still runs.
		fmt.Fprintf(stdout, "live %d: %s (after ~%dms)\n", n, line, time.Since(start).Round(100*time.Millisecond).Milliseconds())
	}
	res := <-done
	if res.err != nil {
		return res.err
	}

	// 2. Replay: every chunk was stored with a sequence number; read them
	// back (this works long after the exec finished, until the box goes).
	err = svc.ExecEvents(ctx, res.e.ID, -1, func(ev boxrun.ExecEvent) error {
		switch ev.Kind {
		case boxrun.KindLog:
			fmt.Fprintf(stdout, "replay seq=%d %s: %s\n", ev.Seq, ev.Stream, strings.TrimSpace(ev.Data))
		case boxrun.KindExit:
			info, _ := ev.Exit()
			fmt.Fprintf(stdout, "replay seq=%d exit code %d\n", ev.Seq, *info.ExitCode)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// 3. Detached: start now, wait later.
	e, err := svc.StartExec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"sh", "-c", "sleep 0.3; echo done"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "started %s: %s\n", e.Cmd[0], e.Status)
	if e, err = svc.WaitExec(ctx, e.ID); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "waited: %s\n", e.Status)
	return nil
}
