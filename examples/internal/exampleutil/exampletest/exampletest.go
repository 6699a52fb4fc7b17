// Package exampletest is the shared test prologue of the examples: it runs
// an example's recipe against a Manager over the fake driver and checks its
// output.
package exampletest

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
)

// Run runs recipe against a fresh boxruntest.NewManager(t) (closed by
// t.Cleanup) and returns what it printed. A recipe error fails the test at
// once, showing the output so far.
func Run(t *testing.T, recipe func(context.Context, boxrun.Service, io.Writer) error) string {
	t.Helper()
	var out strings.Builder
	if err := recipe(context.Background(), boxruntest.NewManager(t), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return out.String()
}

// Contains reports (t.Errorf, the test goes on) each of want that out lacks.
func Contains(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
