package boxruntest

import (
	"os"
	"testing"
)

// RequireAllEnv is the environment variable that turns environment skips
// into failures: CI sets BOXRUN_REQUIRE_ALL=1 so that a missing kernel
// feature, tool or privilege cannot silently drop a suite.
const RequireAllEnv = "BOXRUN_REQUIRE_ALL"

// SkipEnv skips t because the environment lacks something the test needs
// (root, a binary, a kernel feature). With BOXRUN_REQUIRE_ALL=1 it fails the
// test instead. Use it for every environment skip; helper-process re-execs
// are not environment skips and use t.Skip directly.
func SkipEnv(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("required by %s=1 but unavailable: %s", RequireAllEnv, reason)
	}
	t.Skip(reason)
}

// RequireRoot skips t (see SkipEnv) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipEnv(t, "needs root")
	}
}
