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
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"attempt 1: exit code 1",
		"attempt 2: the program did not finish within 1s",
		"attempt 3: correct: 55",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
