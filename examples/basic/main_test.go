package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		"box basic-example is running",
		"exit 0: HELLO FROM THE BOX\n",
		"second exec: status failed, exit 3",
		"lookup of a missing box: Box 'no-such-box' not found (not found: true)",
	)
}
