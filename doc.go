// Package boxrun runs untrusted code in local sandboxes ("boxes").
//
// # Overview
//
// A Manager, opened with Open on a state directory, creates boxes from OCI
// images, runs commands in them (buffered or streamed, with stdin, or on a
// terminal), copies files in and out, and stops, starts and removes them.
// Every box, exec and output chunk is persisted in SQLite (dir/boxrun.db),
// so output streams can be replayed at any time and a restarted Manager
// picks up where the last one stopped.
//
// Open with no options gives a working Manager on Linux: boxes run under
// gVisor (driver/gvisor, runsc) and images are cached under dir/images
// (package image). Options override each part: WithDriver(qemu.New(…)) for
// micro-VMs, WithImages for another image store, a fake from boxruntest in
// tests.
//
// # Usage
//
//	m, err := boxrun.Open("/var/lib/boxrun")
//	if err != nil { ... }
//	defer m.Close()
//	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "alpine"})
//	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"echo", "hi"}}, os.Stdout, os.Stderr)
//
// Box arguments accept a box ID or its name. Service is the whole API as an
// interface: *Manager implements it in process, and package client over the
// HTTP API served by package httpapi, with the same behaviour.
//
// # Packages
//
// The vocabulary (Box, Exec, Event, Error, Service, …) is defined in package
// boxapi and re-exported here, so library users import boxrun alone. Driver
// authors implement package sandbox (Driver, Spec, Process, ImageStore) and
// pass boxruntest.TestDriver. Programs that only talk to a server import
// client, which links neither SQLite nor a driver.
//
// # Events
//
// Each exec's output is a sequence of ExecEvents numbered from 0 (stdout and
// stderr share the counter) and ended by one "exit" event; ExecEvents
// replays and follows it with no gap or repeat. Subscribe streams typed
// Manager events: box and exec lifecycle events are journaled with a Seq
// and can be replayed; exec.output and image.pull are live only.
//
// # Errors
//
// Errors returned by a Manager are *Error values carrying the API's Code
// (BOX_NOT_FOUND, BOX_NOT_RUNNING, VALIDATION_ERROR, …) and the exact
// message clients see. Match them with errors.Is against the kinds
// ErrNotFound, ErrAlreadyExists, ErrInvalid, ErrConflict,
// ErrResourceExceeded, ErrImagePull, ErrRuntime and ErrClosed. A non-zero
// exit code is never an error: it is in the Exec record.
//
// # Crash safety
//
// A state change and its journal entry commit in one transaction, and a
// sandbox is never touched while a database connection is held. On Open,
// execs left running by a crash are finished as failed ("server restarted")
// with an exit event, boxes whose sandbox is gone become stopped, boxes
// caught mid-creation become error, and the driver removes sandboxes the
// database does not know.
package boxrun
