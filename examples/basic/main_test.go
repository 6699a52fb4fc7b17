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
		"box basic-example is running",
		"exit 0: HELLO FROM THE BOX\n",
		"second exec: status failed, exit 3",
		"lookup of a missing box: Box 'no-such-box' not found (not found: true)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
