// Command boxrun is the BoxRun server and its command-line client in one
// binary: `boxrun serve` runs the HTTP API over a local Manager, every other
// command talks to a server (starting one in the background if needed).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/boxrun/boxrun/driver/gvisor/boxinit"
)

func main() {
	if boxinit.IsRole(os.Args[0]) {
		os.Exit(boxinit.Main(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
