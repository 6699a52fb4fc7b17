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
		"mounted /root/inputs (readonly true)", "mounted /root/results (readonly false)",
		"host reads results/count.txt: 3",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
