package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		`exit 0, stdout "5\n", stderr ""`,
		`exit 2, stdout "", stderr "to stderr\n"`,
		"boxes left behind: 0",
	)
}
