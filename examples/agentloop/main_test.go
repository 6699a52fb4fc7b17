package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		"attempt 1: exit code 1",
		"attempt 2: the program did not finish within 1s",
		"attempt 3: correct: 55",
	)
}
