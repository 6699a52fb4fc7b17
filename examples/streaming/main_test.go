package main

import (
	"context"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/boxruntest"
)

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), boxruntest.NewManager(t), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"live 1: step 1", "live 3: step 3",
		"replay seq=0 stdout: step 1", "replay seq=3 stderr: warning", "replay seq=4 exit code 0",
		"started sh: running", "waited: succeeded",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
