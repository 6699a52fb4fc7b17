package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves goroutines behind (streams,
// attach sessions, melody hubs, exec pumps).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
