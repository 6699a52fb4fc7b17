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
		"best: bob,5", "downloaded ranked.csv: 3 lines", "ran the copied script: built",
		"archive entry: project/", "archive entry: project/src/main.sh",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
