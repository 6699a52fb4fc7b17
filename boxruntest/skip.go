package boxruntest

import (
	"testing"

	"github.com/boxrun/boxrun/internal/testenv"
)

// RequireAllEnv is the environment variable that turns environment skips
// into failures: CI sets BOXRUN_REQUIRE_ALL=1 so that a missing kernel
// feature, tool or privilege cannot silently drop a suite.
const RequireAllEnv = testenv.RequireAllEnv

// SkipEnv skips t because the environment lacks something the test needs
// (root, a binary, a kernel feature). With BOXRUN_REQUIRE_ALL=1 it fails the
// test instead. It is internal/testenv.Skip, for driver suites outside this
// module; helper-process re-execs are not environment skips and use t.Skip
// directly.
func SkipEnv(t testing.TB, reason string) {
	t.Helper()
	testenv.Skip(t, reason)
}

// RequireRoot skips t (see SkipEnv) unless the test runs as root; see
// internal/testenv.NeedRoot for the rootless re-run exemption.
func RequireRoot(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t)
}
