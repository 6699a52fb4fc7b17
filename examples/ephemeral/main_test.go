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
		`exit 0, stdout "5\n", stderr ""`,
		`exit 2, stdout "", stderr "to stderr\n"`,
		"boxes left behind: 0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
