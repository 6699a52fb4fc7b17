package mcpserver_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/gvisor/gvisortest"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// gvisorManager opens a Manager over the real gVisor driver, or skips.
func gvisorManager(t *testing.T) *boxrun.Manager {
	t.Helper()
	return gvisortest.Manager(t, nil)
}

// serveMCP serves the API with the MCP endpoint mounted at /mcp on
// loopback and returns the base URL.
func serveMCP(t *testing.T, m *boxrun.Manager, ms *mcpserver.Server, opts ...httpapi.Option) string {
	t.Helper()
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- httpapi.New(m, append(opts, httpapi.WithMount("mcp", ms.Handler()))...).Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		ms.Close()
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// progressLog collects the progress notifications a client receives.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progressLog) handler(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
	p.mu.Lock()
	p.msgs = append(p.msgs, req.Params.Message)
	p.mu.Unlock()
}

func (p *progressLog) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

// TestGVisor_HTTPSession is the agent session over streamable HTTP at /mcp
// of a real API server, with gVisor boxes.
func TestGVisor_HTTPSession(t *testing.T) {
	m := gvisorManager(t)
	ms := mcpserver.New(m, mcpserver.Config{ProgressInterval: 100 * time.Millisecond})
	base := serveMCP(t, m, ms)
	var prog progressLog
	c := mcp.NewClient(&mcp.Implementation{Name: "go-test", Version: "1"}, &mcp.ClientOptions{ProgressNotificationHandler: prog.handler})
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	agentSession(t, cs, m, &prog)

	// A client that goes away mid-exec (its connections drop) leaves no
	// running process: the call is canceled with its HTTP request.
	var conns connTracker
	hc := &http.Client{Transport: &http.Transport{DialContext: conns.dial}}
	cs2, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := ok[boxView](t, cs2, "create_box", map[string]any{"image": "busybox", "keep": true})
	interruptExec(t, cs2, m, kept.ID, func(context.CancelFunc) { conns.closeAll() })
	if _, ok := boxIDs(t, m)[kept.ID]; !ok {
		t.Error("the kept box went with the session")
	}
}

// connTracker dials TCP and can drop every connection it made.
type connTracker struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connTracker) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// TestHTTP_MountAuth checks that /mcp sits behind the API's token and
// Origin checks (requests handed to the handler directly, with a
// non-loopback remote address, so no network is needed).
func TestHTTP_MountAuth(t *testing.T) {
	m := boxruntest.NewManager(t) // no box is created: the fake is enough
	ms := mcpserver.New(m, mcpserver.Config{})
	defer ms.Close()
	h := httpapi.New(m, httpapi.WithToken("s3cret"), httpapi.WithMount("mcp", ms.Handler()))
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, tc := range []struct {
		name   string
		remote string
		header map[string]string
		want   int
	}{
		{"remote without token", "192.0.2.7:4000", nil, http.StatusUnauthorized},
		{"remote with wrong token", "192.0.2.7:4000", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"remote with token", "192.0.2.7:4000", map[string]string{"Authorization": "Bearer s3cret"}, http.StatusOK},
		{"cross-origin browser", "127.0.0.1:4000", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"local client", "127.0.0.1:4000", nil, http.StatusOK},
	} {
		req := httptest.NewRequest("POST", "http://127.0.0.1:9090/mcp", strings.NewReader(body))
		req.RemoteAddr = tc.remote
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.want, rec.Body.String())
		}
	}
}

// TestGVisor_Egress creates a networked box with an egress policy through
// create_box and checks that the box got it.
func TestGVisor_Egress(t *testing.T) {
	m := gvisorManager(t)
	srv := mcpserver.New(m, mcpserver.Config{})
	defer srv.Close()
	cs, _ := connect(t, srv, nil)
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "busybox", "network": true,
		"egress": map[string]any{"default": "deny", "rules": []any{map[string]any{"action": "allow", "cidr": "192.0.2.0/24"}}}})
	ni, err := m.BoxNetwork(context.Background(), box.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ni.Egress.Default != "deny" || len(ni.Egress.Rules) != 1 || ni.Egress.Rules[0].CIDR != "192.0.2.0/24" {
		t.Errorf("egress policy %+v", ni.Egress)
	}
}
