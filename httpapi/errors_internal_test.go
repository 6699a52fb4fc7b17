package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/boxrun/boxrun"
)

// TestToEnvelope covers every API code (spec §3.2, §3.3), wrapped errors,
// foreign errors and the framework errors.
func TestToEnvelope(t *testing.T) {
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantCode   boxrun.Code
		wantMsg    string
	}{
		{boxrun.Errorf(boxrun.CodeBoxNotFound, "Box 'x' not found"), 404, boxrun.CodeBoxNotFound, "Box 'x' not found"},
		{boxrun.Errorf(boxrun.CodeExecNotFound, "Exec 'x' not found"), 404, boxrun.CodeExecNotFound, "Exec 'x' not found"},
		{boxrun.Errorf(boxrun.CodeBoxAlreadyRunning, "m"), 409, boxrun.CodeBoxAlreadyRunning, "m"},
		{boxrun.Errorf(boxrun.CodeNameAlreadyExists, "m"), 409, boxrun.CodeNameAlreadyExists, "m"},
		{boxrun.Errorf(boxrun.CodeResourceExceeded, "m"), 409, boxrun.CodeResourceExceeded, "m"},
		{boxrun.Errorf(boxrun.CodeBoxNotRunning, "m"), 400, boxrun.CodeBoxNotRunning, "m"},
		{boxrun.Errorf(boxrun.CodeExecAlreadyFinished, "m"), 400, boxrun.CodeExecAlreadyFinished, "m"},
		{boxrun.Errorf(boxrun.CodeRuntimeError, "m"), 400, boxrun.CodeRuntimeError, "m"},
		{boxrun.Errorf(boxrun.CodeImagePullFailed, "m"), 400, boxrun.CodeImagePullFailed, "m"},
		{boxrun.Errorf(boxrun.CodeTimeout, "m"), 400, boxrun.CodeTimeout, "m"},
		{boxrun.Errorf(boxrun.CodeCanceled, "m"), 400, boxrun.CodeCanceled, "m"},
		{boxrun.Errorf(boxrun.CodeValidationError, "cpu must be greater than 0"), 422, boxrun.CodeValidationError, "cpu must be greater than 0"},
		{fmt.Errorf("outer: %w", boxrun.Errorf(boxrun.CodeBoxNotFound, "Box 'y' not found")), 404, boxrun.CodeBoxNotFound, "Box 'y' not found"},
		{errors.New("disk on fire"), 400, boxrun.CodeRuntimeError, "disk on fire"},
		{boxrun.ErrClosed, 400, boxrun.CodeRuntimeError, "boxrun: manager closed"},
		{badRequest("Missing action (expected :cancel)"), 400, boxrun.CodeValidationError, "Missing action (expected :cancel)"},
		{invalid("x"), 422, boxrun.CodeValidationError, "x"},
		{&httpError{http.StatusUnsupportedMediaType, boxrun.CodeValidationError, "ct"}, 415, boxrun.CodeValidationError, "ct"},
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
