package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// errDigest marks content whose digest is not the one expected.
var errDigest = errors.New("digest mismatch")

// pullError turns a failure to pull ref into the API's error: a
// *boxapi.Error with code IMAGE_PULL_FAILED whose message carries the
// registry's reason (or CANCELED/TIMEOUT when the caller gave up). The
// cause stays reachable with errors.Is/As (for example *transport.Error).
func pullError(ref string, err error) error {
	var be *boxapi.Error
	switch {
	case errors.As(err, &be):
		return err
	case errors.Is(err, context.Canceled):
		return &boxapi.Error{Code: boxapi.CodeCanceled, Message: fmt.Sprintf("Pull of image '%s' canceled", ref), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &boxapi.Error{Code: boxapi.CodeTimeout, Message: fmt.Sprintf("Pull of image '%s' timed out", ref), Err: err}
	}
	return &boxapi.Error{
		Code:    boxapi.CodeImagePullFailed,
		Message: fmt.Sprintf("Failed to pull image '%s': %s", ref, reason(err)),
		Err:     err,
	}
}

// reason is the registry's own explanation when there is one: its error
// codes and messages, or the HTTP status it answered with. Other errors
// (connection refused, bad digest, a broken layer) speak for themselves.
func reason(err error) string {
	var ee *endpointsError
	if errors.As(err, &ee) {
		return ee.msg
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return err.Error()
	}
	if len(te.Errors) > 0 {
		var parts []string
		for _, d := range te.Errors {
			parts = append(parts, d.String())
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprintf("registry answered %d %s", te.StatusCode, http.StatusText(te.StatusCode))
}

// isRegistryAnswer reports whether err is an answer from the registry
// (as opposed to not reaching it at all).
func isRegistryAnswer(err error) bool {
	var te *transport.Error
	return errors.As(err, &te)
}
