package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine (SSE readers, attach pumps,
// upload writers, subscriptions) outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
