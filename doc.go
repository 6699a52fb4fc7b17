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
// Isolation comes from a Driver: driver/gvisor (runsc, the default on
// Linux) and driver/qemu (micro-VMs) implement it; boxruntest has a fake
// for tests. Images come from an ImageStore (package image). The root
// package imports neither: Open takes them as options.
//
// # Usage
//
//	m, err := boxrun.Open(dir, boxrun.WithDriver(d), boxrun.WithImages(images))
//	if err != nil { ... }
//	defer m.Close()
//	box, err := m.Create(ctx, boxrun.BoxSpec{Image: "alpine"})
//	e, err := m.Exec(ctx, box.ID, boxrun.ExecRequest{Cmd: []string{"echo", "hi"}}, os.Stdout, os.Stderr)
//
// Box arguments accept a box ID or its name. Service is the whole API as an
// interface: *Manager implements it in process, and package client over the
// HTTP API served by package httpapi, with the same behaviour.
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
