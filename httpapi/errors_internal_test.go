package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
)

// TestToEnvelope covers every API code (spec §3.2, §3.3), wrapped errors,
// foreign errors and the framework errors.
func TestToEnvelope(t *testing.T) {
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantCode   boxapi.Code
		wantMsg    string
	}{
		{boxapi.Errorf(boxapi.CodeBoxNotFound, "Box 'x' not found"), 404, boxapi.CodeBoxNotFound, "Box 'x' not found"},
		{boxapi.Errorf(boxapi.CodeExecNotFound, "Exec 'x' not found"), 404, boxapi.CodeExecNotFound, "Exec 'x' not found"},
		{boxapi.Errorf(boxapi.CodeBoxAlreadyRunning, "m"), 409, boxapi.CodeBoxAlreadyRunning, "m"},
		{boxapi.Errorf(boxapi.CodeNameAlreadyExists, "m"), 409, boxapi.CodeNameAlreadyExists, "m"},
		{boxapi.Errorf(boxapi.CodeResourceExceeded, "m"), 409, boxapi.CodeResourceExceeded, "m"},
		{boxapi.Errorf(boxapi.CodeBoxNotRunning, "m"), 400, boxapi.CodeBoxNotRunning, "m"},
		{boxapi.Errorf(boxapi.CodeExecAlreadyFinished, "m"), 400, boxapi.CodeExecAlreadyFinished, "m"},
		{boxapi.Errorf(boxapi.CodeRuntimeError, "m"), 400, boxapi.CodeRuntimeError, "m"},
		{boxapi.Errorf(boxapi.CodeImagePullFailed, "m"), 400, boxapi.CodeImagePullFailed, "m"},
		{boxapi.Errorf(boxapi.CodeTimeout, "m"), 400, boxapi.CodeTimeout, "m"},
		{boxapi.Errorf(boxapi.CodeCanceled, "m"), 400, boxapi.CodeCanceled, "m"},
		{boxapi.Errorf(boxapi.CodeValidationError, "cpu must be greater than 0"), 422, boxapi.CodeValidationError, "cpu must be greater than 0"},
		{fmt.Errorf("outer: %w", boxapi.Errorf(boxapi.CodeBoxNotFound, "Box 'y' not found")), 404, boxapi.CodeBoxNotFound, "Box 'y' not found"},
		{errors.New("disk on fire"), 400, boxapi.CodeRuntimeError, "disk on fire"},
		{boxapi.ErrClosed, 400, boxapi.CodeRuntimeError, "boxrun: manager closed"},
		{badRequest("Missing action (expected :cancel)"), 400, boxapi.CodeValidationError, "Missing action (expected :cancel)"},
		{invalid("x"), 422, boxapi.CodeValidationError, "x"},
		{&httpError{http.StatusUnsupportedMediaType, boxapi.CodeValidationError, "ct"}, 415, boxapi.CodeValidationError, "ct"},
	} {
		status, env := toEnvelope(tc.err)
		if status != tc.wantStatus || env.Code != tc.wantCode || env.Message != tc.wantMsg {
			t.Errorf("toEnvelope(%v) = %d %+v, want %d %s %q", tc.err, status, env, tc.wantStatus, tc.wantCode, tc.wantMsg)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string
		ok   bool
	}{
		{"/", nil, true},
		{"/v1/boxes/a%3Astop", []string{"v1", "boxes", "a:stop"}, true},
		{"/v1/boxes/a%2Fb", []string{"v1", "boxes", "a/b"}, true},
		{"/v1/boxes/", nil, false},
		{"/v1//boxes", nil, false},
		{"/ui/", []string{"ui"}, true},
	} {
		r, _ := http.NewRequest("GET", "http://x"+tc.path, nil)
		got, ok := splitPath(r.URL)
		if ok != tc.ok || (ok && fmt.Sprint(got) != fmt.Sprint(tc.want)) {
			t.Errorf("splitPath(%q) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
