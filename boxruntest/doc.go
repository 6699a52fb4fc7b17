// Package boxruntest holds test helpers for BoxRun and its drivers.
//
// # Overview
//
//   - TestDriver is the conformance suite of sandbox.Driver. Every driver
//     (gvisor, qemu, the fake) runs it from its own tests with a
//     DriverHarness; the doc comments of sandbox.Driver are what it checks.
//   - FakeDriver is a sandbox.Driver that runs commands as plain host
//     processes in a per-box directory. It has NO ISOLATION and exists only
//     so that Manager, httpapi, client and CLI tests run fast everywhere.
//   - NewManager opens a Manager over a FakeDriver in t.TempDir().
//   - BusyboxImage builds a minimal rootfs (busybox and its applets, root
//     plus the non-root BusyboxUser) for real drivers' tests;
//     BusyboxImageWithUser is that image with Config.User set.
//   - Run execs a command in a sandbox and returns its exit code and
//     output, for driver tests.
//
// # Usage
//
// A driver package runs the suite like this:
//
//	func TestDriver(t *testing.T) {
//		boxruntest.TestDriver(t, boxruntest.DriverHarness{
//			New: func(t *testing.T) sandbox.Driver {
//				d, err := mydriver.New(mydriver.Config{Dir: t.TempDir()})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return d
//			},
//			Image:     boxruntest.BusyboxImage(t),
//			UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
//		})
//	}
//
// The suite creates three sandboxes in all (one shared by the exec, TTY and
// copy subtests, one for volumes, stop/start and prune, one running as
// BusyboxUser when UserImage is set), so it stays cheap for drivers whose
// sandboxes take seconds to boot.
package boxruntest
