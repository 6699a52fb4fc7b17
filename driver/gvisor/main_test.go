package gvisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxrun/boxrun/driver/gvisor"
)

// TestMain builds the in-box helper once and points the driver at it and at
// the repository's runsc (through the environment, as the CLI would).
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(gvisor.InitEnv) == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "boxrun-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		dst := filepath.Join(dir, gvisor.InitName)
		if err := gvisor.BuildInit(context.Background(), dst); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Setenv(gvisor.InitEnv, dst)
	}
	if os.Getenv(gvisor.RunscEnv) == "" {
		if p, err := filepath.Abs("../../bin/runsc"); err == nil {
			if _, err := os.Stat(p); err == nil {
				os.Setenv(gvisor.RunscEnv, p)
			}
		}
	}
	return m.Run()
}
