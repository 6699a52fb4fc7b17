package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		"mounted /root/inputs (readonly true)", "mounted /root/results (readonly false)",
		"host reads results/count.txt: 3",
	)
}
