package boxrun_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running: every
// Manager, subscription and exec pump must be gone after Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
