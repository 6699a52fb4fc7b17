package main

import (
	"testing"

	"github.com/boxrun/boxrun/examples/internal/exampleutil/exampletest"
)

func TestRun(t *testing.T) {
	out := exampletest.Run(t, run)
	exampletest.Contains(t, out,
		"live 1: step 1", "live 3: step 3",
		"replay seq=0 stdout: step 1", "replay seq=3 stderr: warning", "replay seq=4 exit code 0",
		"started sh: running", "waited: succeeded",
	)
}
