package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/client"
	"golang.org/x/term"
)

// attachTerminal runs req on a terminal in box: when stdin is a terminal it
// is switched to raw mode (restored afterwards) and SIGWINCH sends the new
// size; stdin and stdout are the CLI's. A non-zero exit becomes *ExitError.
func attachTerminal(ctx context.Context, cfg *rootConfig, svc *client.Client, box string, req boxrun.AttachRequest) error {
	req.Stdin, req.Stdout = cfg.stdin, cfg.stdout
	if req.Term == "" {
		req.Term = cfg.getenv("TERM")
	}
	if in, ok := cfg.stdin.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		fd := int(in.Fd())
		if cols, rows, err := term.GetSize(fd); err == nil {
			req.Size = boxrun.TermSize{Rows: uint16(rows), Cols: uint16(cols)}
		}
		old, err := term.MakeRaw(fd)
		if err == nil {
			defer term.Restore(fd, old)
		}
		resize := make(chan boxrun.TermSize, 1)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for {
				select {
				case <-wctx.Done():
					return
				case <-winch:
					if cols, rows, err := term.GetSize(fd); err == nil {
						select {
						case resize <- boxrun.TermSize{Rows: uint16(rows), Cols: uint16(cols)}:
						case <-wctx.Done():
							return
						}
					}
				}
			}
		}()
		req.Resize = resize
	}
	code, err := svc.Attach(ctx, box, req)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}
