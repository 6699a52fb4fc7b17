// Package mcpserver serves a boxapi.Service as a Model Context Protocol (MCP)
// server, so that agent frameworks and coding assistants can use BoxRun boxes
// as tools. It is built on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk/mcp).
//
// # Usage
//
//	srv := mcpserver.New(svc, mcpserver.Config{MaxBoxes: 4}) // svc: *boxapi.Manager or *client.Client
//	defer srv.Close()
//	err := srv.Run(ctx, &mcp.StdioTransport{})              // one session over stdio
//	http.Handle("/mcp", srv.Handler())                       // or: streamable HTTP, one session per client
//
// `boxrun mcp` runs the stdio form; `boxrun serve` mounts Handler at /mcp
// behind the API's authentication.
//
// # Tools
//
// create_box, list_boxes, exec, read_file, write_file, list_dir, stop_box,
// start_box and remove_box; upload and download (between host files and a
// box) only when Config.HostDir is set. Every tool has a JSON schema and a
// description (see tools.go). A box argument accepts an ID or a name.
//
// # Resources
//
// A box's files are readable as resources through the URI template
// boxrun://{box}/{+path}, e.g. boxrun://box_abc123/etc/hostname.
//
// # Errors
//
// A failing tool call is an MCP tool error (a result with isError set), never
// a protocol error: its text is "CODE: message" and its structured content
// {"code","message"}, with the code and message of the BoxRun API (e.g.
// VALIDATION_ERROR for bad arguments, BOX_NOT_FOUND). Arguments are checked
// against the tool's schema (unknown keys refused) and then semantically.
//
// # Sessions
//
// Each MCP session (the stdio connection, or one streamable-HTTP client)
// owns the boxes it creates. Unless Config.AllBoxes is set, a session sees
// and touches only its own boxes. Config.MaxBoxes and Config.MaxLifetime
// limit them. When a session ends (stdio closed, HTTP DELETE or idle
// timeout, Close), its boxes are removed, except those created with
// "keep": true (refused when MaxLifetime is set) or all of them with
// Config.KeepBoxes.
//
// # Exec
//
// exec runs a command to completion and returns its exit code, stdout and
// stderr, each cut to Config.MaxOutputBytes (head and tail kept, a marker
// in between saying how much was dropped). When the client sends a progress
// token, the output is streamed meanwhile as progress notifications whose
// message is the output produced since the previous one. Canceling the
// request (notifications/cancelled, or the session ending) cancels the exec:
// its process is killed.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxBoxes         = 10               // boxes per session
	DefaultMaxOutputBytes   = 64 << 10         // bytes kept of each of stdout and stderr per exec
	DefaultMaxFileBytes     = 4 << 20          // bytes of read_file, write_file and resource reads
	DefaultExecTimeout      = 10 * time.Minute // exec timeout when the call gives none
	DefaultProgressInterval = time.Second      // at most one progress notification per interval
	DefaultIdleTimeout      = 30 * time.Minute // streamable-HTTP session idle timeout
	maxExecTimeout          = 24 * time.Hour   // largest timeout_seconds accepted
	cleanupTimeout          = 2 * time.Minute  // removing a session's boxes at its end
)

// Config configures a Server. The zero value is usable: every zero field
// takes its default.
type Config struct {
	// MaxBoxes limits how many boxes one session may own at a time (created
	// and not yet removed). 0 means DefaultMaxBoxes; negative means no limit.
	MaxBoxes int
	// MaxLifetime, when positive, removes a session's box this long after
	// its creation, and refuses "keep". 0 means no limit.
	MaxLifetime time.Duration
	// MaxOutputBytes is how much of each of stdout and stderr an exec result
	// carries. 0 means DefaultMaxOutputBytes.
	MaxOutputBytes int
	// MaxFileBytes limits read_file (longer files are cut, marked truncated),
	// write_file and resource reads (longer files are an error).
	// 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// ExecTimeout is the timeout of an exec call that gives none. 0 means
	// DefaultExecTimeout.
	ExecTimeout time.Duration
	// ProgressInterval is the shortest time between two progress
	// notifications of one exec. 0 means DefaultProgressInterval.
	ProgressInterval time.Duration
	// IdleTimeout closes a streamable-HTTP session (removing its boxes) after
	// this long without a request. 0 means DefaultIdleTimeout; negative means
	// never.
	IdleTimeout time.Duration
	// HostDir, when set, enables the upload and download tools, confined to
	// this host directory (symlinks leading out of it are refused). ""
	// (the default) disables them: the server never touches host files.
	HostDir string
	// AllBoxes lets a session see and use every box of the Service, not only
	// those it created. Off by default.
	AllBoxes bool
	// KeepBoxes keeps every session's boxes when the session ends. Off by
	// default: a session's boxes are removed unless created with "keep".
	KeepBoxes bool
	// Logger receives session and cleanup errors. nil discards.
	Logger *slog.Logger
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBoxes == 0 {
		c.MaxBoxes = DefaultMaxBoxes
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.ExecTimeout <= 0 {
		c.ExecTimeout = DefaultExecTimeout
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Version is the server version reported to MCP clients.
const Version = "0.3.0"

// Server is an MCP server over a boxapi.Service. It is safe for concurrent
// use; each session (Run, or a client of Handler) gets its own state. The
// Service stays owned by the caller: Close removes the sessions' boxes but
// does not close the Service.
type Server struct {
	svc boxapi.Service
	cfg Config

	reqSeq atomic.Uint64 // keys of reqs
	reqs   sync.Map      // in-flight HTTP POSTs: key → request context

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
}

// New returns a Server driving svc with cfg (see Config for defaults).
func New(svc boxapi.Service, cfg Config) *Server {
	return &Server{svc: svc, cfg: cfg.withDefaults(), sessions: map[*session]struct{}{}}
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("mcpserver: server closed")

// Run serves one MCP session over t (typically &mcp.StdioTransport{}) until
// the client disconnects or ctx ends, then removes the session's boxes (see
// Config.KeepBoxes) and returns. A client closing the connection is a clean
// end (nil).
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	sess, err := s.newSession()
	if err != nil {
		return err
	}
	defer sess.close()
	srv := s.mcpServer(sess)
	err = srv.Run(ctx, t)
	if err != nil && (errors.Is(err, mcp.ErrConnectionClosed) || ctx.Err() != nil) {
		return nil
	}
	return err
}

// Handler returns an http.Handler serving MCP's streamable HTTP transport;
// each client that initializes gets a session of its own. Mount it behind
// the same authentication as the API (httpapi.WithMount does). Sessions end
// on DELETE, after Config.IdleTimeout without requests, or at Close.
func (s *Server) Handler() http.Handler {
	var idle time.Duration
	if s.cfg.IdleTimeout > 0 {
		idle = s.cfg.IdleTimeout
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server {
		sess, err := s.newSession()
		if err != nil {
			return nil // 400: the server is closed
		}
		return s.mcpServer(sess)
	}, &mcp.StreamableHTTPOptions{SessionTimeout: idle, Logger: s.cfg.Logger})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Tie the calls of this POST to its connection (see callContext).
		// A client-sent header of that name is dropped: only we set it.
		r.Header.Del(requestHeader)
		if r.Method == http.MethodPost {
			id := strconv.FormatUint(s.reqSeq.Add(1), 10)
			s.reqs.Store(id, r.Context())
			defer s.reqs.Delete(id)
			r.Header.Set(requestHeader, id)
		}
		h.ServeHTTP(w, r)
	})
}

// requestHeader carries, inside the server, the key of the HTTP request a
// tool call arrived on.
const requestHeader = "X-Boxrun-Mcp-Request"

// callContext returns the context of a tool call: ctx, also canceled when
// the HTTP request that carried the call ends before the call does (the
// client went away; without an event store its response could never be
// delivered). Over stdio, a disconnect ends the session, which cancels ctx.
// The context also ends with the session (sess.ctx).
func (s *Server) callContext(ctx context.Context, sess *session, req *mcp.CallToolRequest) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stopSess := context.AfterFunc(sess.ctx, cancel)
	stopReq := func() bool { return false }
	if req != nil && req.Extra != nil && req.Extra.Header != nil {
		if v, ok := s.reqs.Load(req.Extra.Header.Get(requestHeader)); ok {
			stopReq = context.AfterFunc(v.(context.Context), cancel)
		}
	}
	return ctx, func() { stopReq(); stopSess(); cancel() }
}

// Close ends every live session, removing its boxes as a session end does,
// and makes Run and new HTTP sessions fail. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	live := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	s.mu.Unlock()
	for _, sess := range live {
		sess.close()
	}
	return nil
}

// newSession registers the state of a new session.
func (s *Server) newSession() (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	sess := &session{srv: s, boxes: map[string]*ownedBox{}}
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	s.sessions[sess] = struct{}{}
	return sess, nil
}

// forget drops a closed session.
func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// mcpServer builds the MCP server of one session: its tools and resources
// are closures over sess.
func (s *Server) mcpServer(sess *session) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "boxrun", Title: "BoxRun", Version: Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       s.cfg.Logger,
		Capabilities: &mcp.ServerCapabilities{},
		InitializedHandler: func(_ context.Context, req *mcp.InitializedRequest) {
			sess.watch(req.Session)
		},
	})
	sess.addTools(srv)
	sess.addResources(srv)
	return srv
}

// instructions is what the server tells clients at initialization.
const instructions = "BoxRun runs commands in isolated sandboxes (boxes) made from OCI images. " +
	"Create a box with create_box, run commands with exec, move files with write_file/read_file/list_dir, " +
	"and remove the box with remove_box when done. Boxes created in this session are removed when it ends " +
	"unless created with keep. Box files are also resources: boxrun://BOX/path."

// logf logs a session-level problem.
func (s *Server) logf(msg string, args ...any) {
	s.cfg.Logger.Warn(fmt.Sprintf("mcpserver: "+msg, args...))
}
