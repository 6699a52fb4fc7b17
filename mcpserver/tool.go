package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolFunc is a typed tool handler: it returns the structured result or an
// error carrying an API code.
type toolFunc[In any] func(ctx context.Context, req *mcp.CallToolRequest, in In) (any, error)

// addTool registers a tool whose input schema is derived from In (struct
// field tags `json` and `jsonschema` give names and descriptions), adjusted
// by tweak. Arguments are validated here rather than by the SDK so that
// every failure is a tool error with code VALIDATION_ERROR.
func addTool[In any](s *session, srv *mcp.Server, t *mcp.Tool, tweak func(*jsonschema.Schema), fn toolFunc[In]) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: schema of %s: %v", t.Name, err)) // a programming error
	}
	if tweak != nil {
		tweak(schema)
	}
	// Arguments are validated against the advertised schema without its
	// numeric and length bounds: the handlers check those themselves with
	// clearer messages ("timeout_seconds must be between 0 and 86400").
	check, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: schema of %s: %v", t.Name, err))
	}
	if tweak != nil {
		tweak(check)
	}
	stripBounds(check)
	resolved, err := check.Resolve(nil)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: resolve schema of %s: %v", t.Name, err))
	}
	t.InputSchema = schema
	srv.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		in, err := decodeArgs[In](req.Params.Arguments, resolved)
		if err != nil {
			return toolError(err), nil
		}
		if !s.beginCall() {
			return toolError(errSessionClosed), nil
		}
		defer s.endCall()
		ctx, cancel := s.srv.callContext(ctx, s, req)
		defer cancel()
		out, err := fn(ctx, req, in)
		if err != nil {
			return toolError(err), nil
		}
		return toolResult(out), nil
	})
}

// decodeArgs validates raw arguments against the schema and decodes them.
func decodeArgs[In any](raw json.RawMessage, resolved *jsonschema.Resolved) (In, error) {
	var in In
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return in, invalidf("Invalid arguments: %v", err)
	}
	if err := resolved.Validate(generic); err != nil {
		return in, invalidf("Invalid arguments: %s", schemaMessage(err))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, invalidf("Invalid arguments: %v", err)
	}
	return in, nil
}

// stripBounds removes numeric and length bounds from sc and its
// sub-schemas.
func stripBounds(sc *jsonschema.Schema) {
	if sc == nil {
		return
	}
	sc.Minimum, sc.Maximum, sc.MinLength, sc.MinItems = nil, nil, nil, nil
	for _, p := range sc.Properties {
		stripBounds(p)
	}
	stripBounds(sc.Items)
	stripBounds(sc.AdditionalProperties)
}

// schemaMessage makes a schema validation error readable: "validating
// /properties/cpu: type: ..." becomes "cpu: type: ...".
func schemaMessage(err error) string {
	msg := strings.TrimSpace(err.Error())
	msg = strings.TrimPrefix(msg, "validating root: ")
	msg = strings.ReplaceAll(msg, "validating /properties/", "")
	return strings.ReplaceAll(msg, "/properties/", ".")
}

// invalidf returns a VALIDATION_ERROR.
func invalidf(format string, args ...any) error {
	return boxapi.Errorf(boxapi.CodeValidationError, format, args...)
}

// toolErrorContent is the structured content of a failed tool call.
type toolErrorContent struct {
	Code    boxapi.Code `json:"code"`
	Message string      `json:"message"`
}

// toolError turns err into an MCP tool error carrying the API's code and
// message.
func toolError(err error) *mcp.CallToolResult {
	code, msg := boxapi.ErrorCode(err), boxapi.ErrorMessage(err)
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: string(code) + ": " + msg}},
		StructuredContent: toolErrorContent{Code: code, Message: msg},
	}
}

// toolResult returns out as structured content and as its JSON text (for
// clients that read only text content).
func toolResult(out any) *mcp.CallToolResult {
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return toolError(fmt.Errorf("encode result: %w", err))
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: string(b)}},
		StructuredContent: json.RawMessage(b),
	}
}

// checkBoxArg validates a box argument (ID or name).
func checkBoxArg(box string) error {
	if box == "" {
		return invalidf("box is required (a box ID or name)")
	}
	if len(box) > 256 || !utf8.ValidString(box) || strings.ContainsAny(box, "/\x00") {
		return invalidf("Invalid box %q", box)
	}
	return nil
}

// checkBoxPath validates a path inside a box: absolute, no NUL, and cleaned
// (".." cannot climb above the box's root, which is the driver's
// confinement; a relative path is refused rather than guessed).
func checkBoxPath(name, p string) (string, error) {
	if p == "" {
		return "", invalidf("%s is required (an absolute path in the box)", name)
	}
	if !strings.HasPrefix(p, "/") {
		return "", invalidf("%s must be an absolute path in the box, got %q", name, p)
	}
	if strings.ContainsRune(p, 0) || len(p) > 4096 || !utf8.ValidString(p) {
		return "", invalidf("Invalid %s %q", name, p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", invalidf("%s must not contain '..' segments, got %q", name, p)
		}
	}
	return p, nil
}

// setMin sets the minimum of a numeric property of schema.
func setMin(schema *jsonschema.Schema, prop string, min float64) {
	if p := schema.Properties[prop]; p != nil {
		p.Minimum = &min
	}
}

// setMax sets the maximum of a numeric property of schema.
func setMax(schema *jsonschema.Schema, prop string, max float64) {
	if p := schema.Properties[prop]; p != nil {
		p.Maximum = &max
	}
}

// setEnum restricts a property of schema to values.
func setEnum(schema *jsonschema.Schema, prop string, values ...any) {
	if p := schema.Properties[prop]; p != nil {
		p.Enum = values
	}
}

// objectSchema returns sc when it describes an object (a pointer field's
// schema may allow null too), or nil.
func objectSchema(sc *jsonschema.Schema) *jsonschema.Schema {
	if sc == nil || sc.Properties == nil {
		return nil
	}
	return sc
}
