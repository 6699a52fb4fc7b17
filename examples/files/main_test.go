package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		"best: bob,5", "downloaded ranked.csv: 3 lines", "ran the copied script: built",
		"archive entry: project/", "archive entry: project/src/main.sh",
	)
}
