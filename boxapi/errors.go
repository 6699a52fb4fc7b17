package boxapi

import (
	"errors"
	"fmt"
)

// Code is a stable error code of the BoxRun API. Every error returned by a
// Manager carries one (see ErrorCode); httpapi turns it into the wire envelope
// {"code","message"} and client turns the envelope back into the same *Error.
type Code string

// The API's error codes.
const (
	CodeBoxNotFound         Code = "BOX_NOT_FOUND"
	CodeExecNotFound        Code = "EXEC_NOT_FOUND"
	CodeBoxAlreadyRunning   Code = "BOX_ALREADY_RUNNING"
	CodeNameAlreadyExists   Code = "NAME_ALREADY_EXISTS"
	CodeResourceExceeded    Code = "RESOURCE_EXCEEDED"
	CodeBoxNotRunning       Code = "BOX_NOT_RUNNING"
	CodeExecAlreadyFinished Code = "EXEC_ALREADY_FINISHED"
	CodeRuntimeError        Code = "RUNTIME_ERROR"
	CodeImagePullFailed     Code = "IMAGE_PULL_FAILED"
	CodeTimeout             Code = "TIMEOUT"
	CodeCanceled            Code = "CANCELED"
	CodeValidationError     Code = "VALIDATION_ERROR"
	// CodeFileNotFound (404, an extension: docs/api-extensions.md) is the
	// archive download's answer for a path missing in the box. The original
	// file download keeps RUNTIME_ERROR "File '…' not found in box".
	CodeFileNotFound Code = "FILE_NOT_FOUND"
	// CodeSnapshotNotFound (404, an extension) is the answer for an
	// unknown snapshot ID.
	CodeSnapshotNotFound Code = "SNAPSHOT_NOT_FOUND"
	// CodeBoxBusy (409, an extension) refuses a checkpoint of a box while
	// execs, attach sessions or another checkpoint use it.
	CodeBoxBusy Code = "BOX_BUSY"
)

// Error kinds. Match them with errors.Is; every *Error matches the kind of its
// Code, locally and through the remote client alike.
var (
	ErrNotFound         = errors.New("not found")               // BOX_NOT_FOUND, EXEC_NOT_FOUND, FILE_NOT_FOUND, SNAPSHOT_NOT_FOUND
	ErrAlreadyExists    = errors.New("already exists")          // NAME_ALREADY_EXISTS
	ErrInvalid          = errors.New("invalid argument")        // VALIDATION_ERROR
	ErrConflict         = errors.New("wrong state")             // BOX_ALREADY_RUNNING, BOX_NOT_RUNNING, EXEC_ALREADY_FINISHED, BOX_BUSY
	ErrResourceExceeded = errors.New("resource limit exceeded") // RESOURCE_EXCEEDED
	ErrImagePull        = errors.New("image pull failed")       // IMAGE_PULL_FAILED
	ErrTimeout          = errors.New("timeout")                 // TIMEOUT
	ErrCanceled         = errors.New("canceled")                // CANCELED
	ErrRuntime          = errors.New("runtime error")           // RUNTIME_ERROR
	ErrClosed           = errors.New("boxrun: manager closed")  // RUNTIME_ERROR, after Close
)

// Error is an error with an API code. Message is the exact text clients see.
// Err, when set, is the underlying cause (reachable with errors.Is/As).
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the kind of e's code, or an *Error with the same code.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code
	}
	return target == e.Code.Kind()
}

// Kind returns the error kind (one of the Err variables) of the code.
func (c Code) Kind() error {
	switch c {
	case CodeBoxNotFound, CodeExecNotFound, CodeFileNotFound, CodeSnapshotNotFound:
		return ErrNotFound
	case CodeNameAlreadyExists:
		return ErrAlreadyExists
	case CodeValidationError:
		return ErrInvalid
	case CodeBoxAlreadyRunning, CodeBoxNotRunning, CodeExecAlreadyFinished, CodeBoxBusy:
		return ErrConflict
	case CodeResourceExceeded:
		return ErrResourceExceeded
	case CodeImagePullFailed:
		return ErrImagePull
	case CodeTimeout:
		return ErrTimeout
	case CodeCanceled:
		return ErrCanceled
	default:
		return ErrRuntime
	}
}

// ErrorCode returns the API code of err: the code of the first *Error in its
// chain, CodeRuntimeError for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeRuntimeError
}

// ErrorMessage returns the client-facing message of err: the Message of the
// first *Error in its chain, or err.Error().
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// Errorf returns an *Error with code c and a formatted message. A %w verb in
// format sets Err as well.
func Errorf(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: c, Message: err.Error(), Err: errors.Unwrap(err)}
}
