package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// decodeJSON reads a JSON request body into v, with the spec's framework
// rules (§2.2, §2.7 REC): Content-Type must be JSON (415), at most 2 MiB
// (413), syntactically valid (400), and of the right types (422). Unknown
// fields are ignored; null is the same as absent (v's optional fields are
// pointers, maps or slices).
func decodeJSON(r *http.Request, v any) error {
	if !isJSONType(r.Header.Get("Content-Type")) {
		return &httpError{http.StatusUnsupportedMediaType, boxapi.CodeValidationError,
			"Expected request with `Content-Type: application/json`"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return badRequest("Failed to read the request body: " + err.Error())
	}
	if int64(len(body)) > maxJSONBody {
		return &httpError{http.StatusRequestEntityTooLarge, boxapi.CodeValidationError,
			fmt.Sprintf("Request body larger than %d bytes", maxJSONBody)}
	}
	err = json.Unmarshal(body, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return invalid(fmt.Sprintf("Failed to deserialize the JSON body into the target type: %s: invalid type %s, expected %s",
			field, typeErr.Value, typeName(typeErr.Type.String())))
	default:
		return badRequest("Failed to parse the request body as JSON: " + err.Error())
	}
}

// typeName turns a Go type into the JSON type a client should have sent.
func typeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "*"):
		return typeName(goType[1:])
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"):
		return "an integer"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "httpapi."):
		return "an object"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return goType
}

// isJSONType accepts application/json and application/*+json, with params.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// missing is the 422 for an absent (or null) required field.
func missing(field string) error {
	return invalid("Failed to deserialize the JSON body into the target type: missing field `" + field + "`")
}

// volumeJSON is a volume in a request: host_path and guest_path required.
type volumeJSON struct {
	HostPath  *string `json:"host_path"`
	GuestPath *string `json:"guest_path"`
	Readonly  *bool   `json:"readonly"`
}

// toVolumes checks and converts request volumes. nil stays nil.
func toVolumes(in []volumeJSON) ([]boxapi.Volume, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]boxapi.Volume, 0, len(in))
	for i, v := range in {
		if v.HostPath == nil {
			return nil, missing(fmt.Sprintf("volumes[%d].host_path", i))
		}
		if v.GuestPath == nil {
			return nil, missing(fmt.Sprintf("volumes[%d].guest_path", i))
		}
		out = append(out, boxapi.Volume{HostPath: *v.HostPath, GuestPath: *v.GuestPath, Readonly: v.Readonly != nil && *v.Readonly})
	}
	return out, nil
}

// positive checks an optional positive integer: nil keeps def; zero or
// negative fails with "<name> must be greater than 0".
func positive(name string, p *int64, def int64) (int64, error) {
	if p == nil {
		return def, nil
	}
	if *p <= 0 {
		return 0, invalid(name + " must be greater than 0")
	}
	return *p, nil
}

// checkCmd and checkTimeout are the exec validations shared with /v1/run.
func checkCmd(cmd *[]string) error {
	if cmd == nil {
		return missing("cmd")
	}
	if len(*cmd) == 0 {
		return invalid("cmd must be a non-empty list")
	}
	return nil
}

func checkTimeout(p *int64) (int64, error) {
	if p == nil {
		return 0, nil
	}
	if *p <= 0 {
		return 0, invalid("timeout_ms must be positive")
	}
	return *p, nil
}

func checkWorkdir(w string) error {
	if !strings.HasPrefix(w, "/") {
		return invalid("workdir must be an absolute path (starting with /)")
	}
	return nil
}
