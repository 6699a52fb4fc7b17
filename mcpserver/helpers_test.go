package mcpserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connect runs srv.Run on an in-memory transport and returns a connected
// official-SDK client session. done receives Run's result after the client
// closes.
func connect(t *testing.T, srv *mcpserver.Server, opts *mcp.ClientOptions) (cs *mcp.ClientSession, done <-chan error) {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(context.Background(), st) }()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts)
	cs, err := c.Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, errc
}

// call calls a tool and fails the test on a protocol error.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	return res
}

// ok calls a tool, fails on a tool error, and decodes its structured result.
func ok[T any](t *testing.T, cs *mcp.ClientSession, name string, args any) T {
	t.Helper()
	res := call(t, cs, name, args)
	if res.IsError {
		t.Fatalf("%s(%v): tool error %s", name, args, text(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: decode %s: %v", name, b, err)
	}
	return out
}

// text is the text content of a result.
func text(res *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

// wantToolError checks that res is a tool error with the API code.
func wantToolError(t *testing.T, res *mcp.CallToolResult, code boxrun.Code) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("want tool error %s, got success %s", code, text(res))
	}
	var e struct {
		Code    boxrun.Code `json:"code"`
		Message string      `json:"message"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &e); err != nil || e.Code != code || e.Message == "" {
		t.Fatalf("want code %s with a message, got %s (text %q)", code, b, text(res))
	}
	if want := string(code) + ": " + e.Message; text(res) != want {
		t.Errorf("text %q, want %q", text(res), want)
	}
}

type boxView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Owned  bool   `json:"owned"`
}

type execResult struct {
	ExecID          string `json:"exec_id"`
	Status          string `json:"status"`
	ExitCode        *int   `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	Error           string `json:"error"`
}

// boxIDs lists the IDs of every box of svc.
func boxIDs(t *testing.T, svc boxrun.Service) map[string]boxrun.BoxStatus {
	t.Helper()
	boxes, err := svc.List(context.Background(), boxrun.BoxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]boxrun.BoxStatus{}
	for _, b := range boxes {
		ids[b.ID] = b.Status
	}
	return ids
}
