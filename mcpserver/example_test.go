package mcpserver_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An agent connects to an MCP server over a Service (here a Manager over
// the test driver; in production boxrun.Open or client.New), creates a box
// and runs a command in it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mcp-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := boxrun.Open(dir, boxrun.WithDriver(boxruntest.NewFakeDriver(filepath.Join(dir, "fake"))), boxrun.WithImages(nil), boxrun.WithLimits(8, 8<<10))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	srv := mcpserver.New(m, mcpserver.Config{MaxBoxes: 4, MaxLifetime: time.Hour})
	defer srv.Close()
	serverSide, clientSide := mcp.NewInMemoryTransports() // or mcp.StdioTransport, or srv.Handler()
	go srv.Run(ctx, serverSide)

	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0"}, nil)
	session, err := client.Connect(ctx, clientSide, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close() // the session's boxes are removed

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_box",
		Arguments: map[string]any{"image": "test", "name": "scratch"}})
	if err != nil || res.IsError {
		log.Fatal(err, res)
	}
	res, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "exec",
		Arguments: map[string]any{"box": "scratch", "cmd": []string{"echo", "hello"}}})
	if err != nil || res.IsError {
		log.Fatal(err, res)
	}
	out := res.StructuredContent.(map[string]any)
	fmt.Printf("exit %v: %q\n", out["exit_code"], out["stdout"])

	res, _ = session.CallTool(ctx, &mcp.CallToolParams{Name: "exec",
		Arguments: map[string]any{"box": "scratch", "cmd": []string{"true"}, "timeout_seconds": -1}})
	fmt.Println(res.IsError, res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// exit 0: "hello\n"
	// true VALIDATION_ERROR: timeout_seconds must be between 0 and 86400, got -1
}
