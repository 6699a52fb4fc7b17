// Package boxapi is the vocabulary of BoxRun: boxes, execs, events, errors
// and the Service interface that a local Manager and a remote client both
// implement, together with their JSON forms on the wire (the BoxRun API).
//
// It depends on the standard library only, so programs that talk to a BoxRun
// server (package client) or serve one (package httpapi) link neither SQLite
// nor a driver. Package boxrun re-exports every name here with type aliases:
// library users write boxrun.Box and boxrun.ErrNotFound and never need to
// import boxapi themselves.
package boxapi
