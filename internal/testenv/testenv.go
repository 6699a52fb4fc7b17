// Package testenv is the one place tests skip for want of something in the
// environment (root, a kernel feature, a tool). With BOXRUN_REQUIRE_ALL=1
// (CI sets it) such a skip is a failure instead, so a missing dependency
// cannot silently drop a suite. Skips of helper-process re-execs are not
// environment skips and use t.Skip directly.
package testenv

import (
	"os"
	"testing"
)

// RequireAll reports whether environment skips must fail
// (BOXRUN_REQUIRE_ALL=1).
func RequireAll() bool { return os.Getenv("BOXRUN_REQUIRE_ALL") == "1" }

// Skip skips t because the environment lacks something (why says what and
// how to get it), or fails it under BOXRUN_REQUIRE_ALL=1.
func Skip(t testing.TB, why string) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("environment skip with BOXRUN_REQUIRE_ALL=1: %s", why)
	}
	t.Skip(why)
}

// NeedRoot skips (or fails, see Skip) unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}
