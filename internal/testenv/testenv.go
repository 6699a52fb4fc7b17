// Package testenv is the one place tests skip for want of something in the
// environment (root, a kernel feature, a tool). With BOXRUN_REQUIRE_ALL=1
// (CI sets it) such a skip is a failure instead, so a missing dependency
// cannot silently drop a suite. boxruntest.SkipEnv and RequireRoot delegate
// here.
//
// Exempt, and written as plain t.Skip: helper-process re-execs (the test
// binary running itself as a child), a driver opting out of a conformance
// feature it does not implement, and -short. Root-only tests in a rootless
// re-run of a root run (driver/gvisor TestRootless sets RootlessRerunEnv)
// skip by design: the same tests already ran as root.
package testenv

import (
	"os"
	"testing"
)

// RequireAllEnv names the variable that turns environment skips into
// failures when it is "1".
const RequireAllEnv = "BOXRUN_REQUIRE_ALL"

// RootlessRerunEnv is set to "1" in a test binary that a root test re-runs
// as an unprivileged user; NeedRoot then skips without failing.
const RootlessRerunEnv = "BOXRUN_TEST_ROOTLESS_RERUN"

// RequireAll reports whether environment skips must fail
// (BOXRUN_REQUIRE_ALL=1).
func RequireAll() bool { return os.Getenv(RequireAllEnv) == "1" }

// Skip skips t because the environment lacks something (why says what and
// how to get it), or fails it under BOXRUN_REQUIRE_ALL=1.
//
// In a rootless re-run (RootlessRerunEnv) it always skips: what is missing
// there is what rootless mode lacks (root, cgroups, loop mounts), and the
// same tests ran with it as root in the parent run.
func Skip(t testing.TB, why string) {
	t.Helper()
	if RequireAll() && os.Getenv(RootlessRerunEnv) != "1" {
		t.Fatalf("environment skip with %s=1: %s", RequireAllEnv, why)
	}
	t.Skip(why)
}

// NeedRoot skips (or fails, see Skip) unless the test runs as root. In a
// rootless re-run (RootlessRerunEnv) it always skips: a root-only test ran
// as root in the parent run.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(RootlessRerunEnv) == "1" {
		t.Skip("root only (this is the rootless re-run; it ran as root in the parent)")
	}
	Skip(t, "needs root")
}
