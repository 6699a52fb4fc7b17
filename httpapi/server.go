// Package httpapi serves a boxapi.Service over the BoxRun HTTP API: the REST
// endpoints, the exec-output SSE stream, the WebSocket terminal and the web UI
// at /ui, exactly as the wire contract (spec/boxrun-api.md) describes, plus
// the extensions the client package uses (see Server).
//
// # Usage
//
//	srv := httpapi.New(mgr)                 // mgr is a *boxapi.Manager (any boxapi.Service)
//	ln, err := httpapi.Listen("tcp", "127.0.0.1:9090")
//	err = srv.Serve(ctx, ln)                // returns after ctx ends and connections drain
//
// A *Server is an http.Handler, so it can also be mounted in another server.
//
// # Endpoints
//
// The spec's 17 endpoints, GET / (303 to /ui) and GET /ui, plus these
// extensions (notes/EXTENSIONS.md), which the client package relies on:
//
//	GET    /v1/boxes/{id}/exec/{eid}/events?since=N   resume (also Last-Event-ID); events then carry "id: <seq>"
//	POST   /v1/boxes/{id}/exec                        optional "stdin_b64" field
//	GET    /v1/boxes/{id}/exec/{eid}:wait             blocks until the exec finished
//	PUT    /v1/boxes/{id}/archive?path=DIR            tar body into DIR (Service.CopyIn)
//	GET    /v1/boxes/{id}/archive?path=SRC            tar stream of SRC (Service.CopyOut)
//	GET    /v1/events?box_id=&type=&after_seq=&replay=true   Manager events as SSE
//	GET    /v1/images, POST /v1/images {"ref"}, DELETE /v1/images?ref=, POST /v1/images:prune
//	POST   /v1/images:load?tag= (tar body), POST /v1/images:tag {"source","target"}, GET /v1/images:save?ref=
//	GET    /v1/boxes/{id}/attach?cmd=a&cmd=b&workdir=/x      program and working directory
//	GET    /v1/boxes/{id}/lifetime                          ttl / idle timeout state; POST /v1/boxes takes ttl_ms, idle_timeout_ms, on_expire
//	GET    /v1/boxes/{id}/stats[?stream=1&interval=1s]      resource sample (JSON) or SSE "stats" stream
//	GET    /v1/boxes/{id}/watch?path=P[&recursive=1]        SSE file watch (resume: watch_id=W&since=N)
//	GET    /metrics                                         Prometheus text format (same auth rules as /v1)
//	POST   /v1/boxes/{id}:checkpoint, POST /v1/boxes/{id}:fork, GET /v1/snapshots, GET|DELETE /v1/snapshots/{sid},
//	POST   /v1/snapshots/{sid}:restore                      snapshots (see snapshots.go)
//
// Paths are split on the escaped path, so "%3A" works like ":" and "%2F"
// stays inside a segment. Browser requests from another origin (an Origin
// header not matching Host) are refused with 403, so a web page cannot drive
// a local server; the API has no CORS.
//
// # Errors
//
// Every error, including framework-level ones (bad JSON 400, wrong content
// type 415, too large 413, missing or mistyped field 422, unknown route 404,
// wrong method 405), is the JSON envelope {"code","message"}. Service errors
// map through boxapi.ErrorCode in one place (statusOf).
//
// # Authentication
//
// With WithToken, requests must carry "Authorization: Bearer <token>" unless
// they arrive over a Unix socket or from a loopback address (see isLocal);
// browsers, which cannot set headers on WebSockets, may pass
// ?access_token=<token> instead. Without a token, nothing is checked, and
// Serve refuses to serve a non-loopback TCP listener.
package httpapi

import (
	"crypto/subtle"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// Defaults of the options.
const (
	DefaultUploadLimit int64 = 1 << 30          // bytes of one uploaded file
	DefaultKeepAlive         = 15 * time.Second // SSE keep-alive comment interval
	maxJSONBody        int64 = 2 << 20          // bytes of a JSON request body (the spec's framework limit)
)

// Option configures a Server in New.
type Option func(*Server)

// WithLogger sets the logger for request errors. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithToken requires "Authorization: Bearer token" on requests that do not
// come over a Unix socket or a loopback address. "" (the default) disables
// the check.
func WithToken(token string) Option {
	return func(s *Server) { s.token = token }
}

// WithUploadLimit sets the largest file accepted by the upload endpoint;
// bigger uploads get 413. Default DefaultUploadLimit (1 GiB); n <= 0 keeps it.
func WithUploadLimit(n int64) Option {
	return func(s *Server) {
		if n > 0 {
			s.uploadLimit = n
		}
	}
}

// WithKeepAlive sets how often an idle SSE stream gets a keep-alive comment.
// Default DefaultKeepAlive (15s); d <= 0 keeps it.
func WithKeepAlive(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.keepAlive = d
		}
	}
}

// WithMount serves h at /name and below (e.g. WithMount("mcp", h) for the
// MCP endpoint), behind the same Origin check and token authentication as
// the API. name is one path segment. The handler sees the original request
// path. Mounts do not shadow the API's own paths ("v1", "ui").
func WithMount(name string, h http.Handler) Option {
	return func(s *Server) {
		if name == "" || name == "v1" || name == "ui" || strings.Contains(name, "/") || h == nil {
			return
		}
		if s.mounts == nil {
			s.mounts = map[string]http.Handler{}
		}
		s.mounts[name] = h
	}
}

// Server is the BoxRun HTTP API over a boxapi.Service. It is an http.Handler,
// safe for concurrent use. It starts no goroutines of its own outside of
// requests; streaming requests (SSE, WebSocket) end when their client goes,
// when the stream is done, or when Serve shuts down.
type Server struct {
	svc         boxapi.Service
	log         *slog.Logger
	token       string
	uploadLimit int64
	keepAlive   time.Duration
	mounts      map[string]http.Handler // WithMount: first path segment → handler
	metrics     *serverMetrics          // GET /metrics

	drainOnce sync.Once
	drain     chan struct{} // closed when Serve shuts down: streams end
	streams   sync.WaitGroup
}

// New returns a Server for svc (typically a *boxapi.Manager, which stays
// owned by the caller: the Server never closes it).
func New(svc boxapi.Service, opts ...Option) *Server {
	s := &Server{
		svc:         svc,
		log:         slog.New(slog.DiscardHandler),
		uploadLimit: DefaultUploadLimit,
		keepAlive:   DefaultKeepAlive,
		drain:       make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.metrics = newServerMetrics(svc)
	return s
}

// handlerFunc is an endpoint: it writes a success response itself and returns
// errors for writeError to encode.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p params) error

// params are the path segments an endpoint needs (already unescaped).
type params struct {
	box  string // box ID or name segment (verbatim, verb not yet handled)
	exec string // exec segment
	seg  string // a whole top-level segment, e.g. "images:prune"
}

// ServeHTTP routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL)
	if !ok {
		writeError(w, s.log, r, errNotFound(r))
		return
	}
	if len(segs) > 0 && s.mounts[segs[0]] != nil {
		if err := checkOrigin(r); err != nil {
			writeError(w, s.log, r, err)
			return
		}
		if err := s.authorize(r); err != nil {
			writeError(w, s.log, r, err)
			return
		}
		s.mounts[segs[0]].ServeHTTP(w, r)
		return
	}
	methods, p := s.route(segs)
	if methods == nil {
		writeError(w, s.log, r, errNotFound(r))
		return
	}
	h := methods[r.Method]
	if h == nil && r.Method == http.MethodHead {
		h = methods[http.MethodGet]
	}
	if h == nil {
		allow := make([]string, 0, len(methods))
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, s.log, r, &httpError{http.StatusMethodNotAllowed, boxapi.CodeValidationError,
			"Method " + r.Method + " not allowed for " + r.URL.Path})
		return
	}
	public := len(segs) == 0 || segs[0] == "ui"
	if !public {
		if err := checkOrigin(r); err != nil {
			writeError(w, s.log, r, err)
			return
		}
		if err := s.authorize(r); err != nil {
			writeError(w, s.log, r, err)
			return
		}
	}
	op := opOf(r.Method, segs)
	start := time.Now()
	err := h(w, r, p)
	if op != "" {
		s.metrics.observe(op, err, time.Since(start))
	}
	if err != nil {
		writeError(w, s.log, r, err)
	}
}

// routes maps a method to its endpoint.
type routes map[string]handlerFunc

// route finds the endpoints of a path. It returns nil for an unknown path.
func (s *Server) route(segs []string) (routes, params) {
	n := len(segs)
	switch {
	case n == 0:
		return routes{http.MethodGet: s.handleRoot}, params{}
	case segs[0] == "ui":
		return routes{http.MethodGet: s.handleUI}, params{seg: strings.Join(segs[1:], "/")}
	case segs[0] == "metrics" && n == 1:
		return routes{http.MethodGet: s.handleMetrics}, params{}
	case segs[0] != "v1" || n < 2:
		return nil, params{}
	}
	if n == 2 {
		switch segs[1] {
		case "info":
			return routes{http.MethodGet: s.handleInfo}, params{}
		case "driver":
			return routes{http.MethodGet: s.handleDriver}, params{}
		case "boxes":
			return routes{http.MethodGet: s.handleList, http.MethodPost: s.handleCreate}, params{}
		case "run":
			return routes{http.MethodPost: s.handleRun}, params{}
		case "gc":
			return routes{http.MethodPost: s.handleGC}, params{}
		case "events":
			return routes{http.MethodGet: s.handleEvents}, params{}
		case "images":
			return routes{http.MethodGet: s.handleImages, http.MethodPost: s.handlePullImage,
				http.MethodDelete: s.handleRemoveImage}, params{}
		case "images:prune":
			return routes{http.MethodPost: s.handlePruneImages}, params{}
		case "images:load":
			return routes{http.MethodPost: s.handleLoadImages}, params{}
		case "images:tag":
			return routes{http.MethodPost: s.handleTagImage}, params{}
		case "images:save":
			return routes{http.MethodGet: s.handleSaveImages}, params{}
		case "snapshots":
			return routes{http.MethodGet: s.handleSnapshots}, params{}
		}
		return nil, params{}
	}
	if n == 3 && segs[1] == "snapshots" {
		return routes{http.MethodGet: s.handleGetSnapshot, http.MethodDelete: s.handleRemoveSnapshot,
			http.MethodPost: s.handleSnapshotAction}, params{seg: segs[2]}
	}
	if segs[1] != "boxes" {
		return nil, params{}
	}
	p := params{box: segs[2]}
	if n == 3 {
		return routes{http.MethodGet: s.handleGet, http.MethodDelete: s.handleRemove,
			http.MethodPost: s.handleBoxAction}, p
	}
	switch {
	case n == 4 && segs[3] == "exec":
		return routes{http.MethodPost: s.handleStartExec}, p
	case n == 4 && segs[3] == "execs":
		return routes{http.MethodGet: s.handleListExecs}, p
	case n == 4 && segs[3] == "attach":
		return routes{http.MethodGet: s.handleAttach}, p
	case n == 4 && segs[3] == "lifetime":
		return routes{http.MethodGet: s.handleLifetime}, p
	case n == 4 && segs[3] == "stats":
		return routes{http.MethodGet: s.handleStats}, p
	case n == 4 && segs[3] == "files":
		return routes{http.MethodGet: s.handleListFiles}, p
	case n == 4 && segs[3] == "watch":
		return routes{http.MethodGet: s.handleWatch}, p
	case n == 4 && segs[3] == "network":
		return routes{http.MethodGet: s.handleNetwork}, p
	case n == 4 && segs[3] == "runtime":
		return routes{http.MethodGet: s.handleRuntime}, p
	case n == 5 && segs[3] == "network" && segs[4] == "egress":
		return routes{http.MethodPut: s.handleSetEgress}, p
	case n == 4 && segs[3] == "archive":
		return routes{http.MethodGet: s.handleArchiveGet, http.MethodPut: s.handleArchivePut}, p
	case n == 5 && segs[3] == "exec":
		p.exec = segs[4]
		return routes{http.MethodGet: s.handleGetExec, http.MethodPost: s.handleExecAction}, p
	case n == 6 && segs[3] == "exec" && segs[5] == "events":
		p.exec = segs[4]
		return routes{http.MethodGet: s.handleExecEvents}, p
	case n == 5 && segs[3] == "files" && segs[4] == "upload":
		return routes{http.MethodPost: s.handleUpload}, p
	case n == 5 && segs[3] == "files" && segs[4] == "download":
		return routes{http.MethodPost: s.handleDownload}, p
	}
	return nil, params{}
}

// splitPath splits the escaped path into unescaped segments, so that "%3A"
// and ":" are the same and an escaped "/" stays inside its segment. "/" is
// no segments. Empty segments (a trailing or doubled slash) are not routable.
func splitPath(u *url.URL) ([]string, bool) {
	raw := strings.TrimPrefix(u.EscapedPath(), "/")
	if raw == "" {
		return nil, true
	}
	parts := strings.Split(raw, "/")
	for i, part := range parts {
		seg, err := url.PathUnescape(part)
		if err != nil || seg == "" {
			// Allow a trailing slash only under /ui/.
			if seg == "" && err == nil && i == len(parts)-1 && parts[0] == "ui" {
				parts = parts[:i]
				break
			}
			return nil, false
		}
		parts[i] = seg
	}
	return parts, true
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request, _ params) error {
	http.Redirect(w, r, "/ui", http.StatusSeeOther)
	return nil
}

// authorize checks the bearer token (see the package doc).
func (s *Server) authorize(r *http.Request) error {
	if s.token == "" || isLocal(r) {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("access_token")
	}
	if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1 {
		return nil
	}
	return &httpError{http.StatusUnauthorized, "UNAUTHORIZED", "Missing or invalid bearer token"}
}

// isLocal reports whether r came over a Unix socket or from a loopback
// address. It trusts the connection, not headers: a reverse proxy on the same
// host makes every request local, so put the token check in the proxy then.
func isLocal(r *http.Request) bool {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la.Network() == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkOrigin rejects API requests a browser sends from another origin (the
// API has no CORS, so only the embedded UI is a legitimate browser client).
// This keeps web pages from driving a local server, e.g. opening a terminal
// WebSocket or posting a form upload. Non-browser clients send no Origin.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return &httpError{http.StatusForbidden, "FORBIDDEN", "Cross-origin request refused: " + origin}
}

// discard drains and closes a request body we ignore (stop, start, ...),
// so the connection can be reused.
func discard(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxJSONBody))
}
