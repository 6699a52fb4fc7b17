package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/boxrun/boxrun/boxapi"
)

// httpError is an error with an explicit status and wire code, for failures
// that are not Service errors (routing, decoding, auth).
type httpError struct {
	status  int
	code    boxapi.Code
	message string
}

func (e *httpError) Error() string { return e.message }

// envelope is the wire error object: exactly {"code","message"}.
type envelope struct {
	Code    boxapi.Code `json:"code"`
	Message string      `json:"message"`
}

// statusOf maps an API error code to its HTTP status (spec §3.2, §3.3):
// 404 for the *_NOT_FOUND codes (FILE_NOT_FOUND and SNAPSHOT_NOT_FOUND are extensions), 409 for RESOURCE_EXCEEDED,
// NAME_ALREADY_EXISTS, BOX_ALREADY_RUNNING and BOX_BUSY (an extension), 422 for VALIDATION_ERROR
// (the handlers use 400 explicitly where the spec says so), 400 otherwise.
func statusOf(code boxapi.Code) int {
	switch code {
	case boxapi.CodeBoxNotFound, boxapi.CodeExecNotFound, boxapi.CodeFileNotFound, boxapi.CodeSnapshotNotFound:
		return http.StatusNotFound
	case boxapi.CodeResourceExceeded, boxapi.CodeNameAlreadyExists, boxapi.CodeBoxAlreadyRunning, boxapi.CodeBoxBusy:
		return http.StatusConflict
	case boxapi.CodeValidationError:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusBadRequest
	}
}

// toEnvelope turns any error into its status and envelope. This is the one
// place errors become HTTP.
func toEnvelope(err error) (int, envelope) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, envelope{he.code, he.message}
	}
	code := boxapi.ErrorCode(err)
	return statusOf(code), envelope{code, boxapi.ErrorMessage(err)}
}

// writeError writes err as the JSON envelope.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	status, env := toEnvelope(err)
	if env.Code == boxapi.CodeRuntimeError {
		log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		log.Debug("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, env)
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError,
			[]byte(`{"code":"RUNTIME_ERROR","message":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// okResponse is the {"ok": true} response of delete and the archive/image
// extensions.
type okResponse struct {
	OK bool `json:"ok"`
}

func errNotFound(r *http.Request) error {
	return &httpError{http.StatusNotFound, boxapi.CodeValidationError, "No route for " + r.Method + " " + r.URL.Path}
}

// badRequest is a 400 VALIDATION_ERROR (missing verb, upload part, bad query).
func badRequest(msg string) error {
	return &httpError{http.StatusBadRequest, boxapi.CodeValidationError, msg}
}

// invalid is a 422 VALIDATION_ERROR (semantic validation, missing field).
func invalid(msg string) error {
	return &httpError{http.StatusUnprocessableEntity, boxapi.CodeValidationError, msg}
}
