// Package client is a remote boxapi.Service: it speaks the BoxRun HTTP API
// (REST, SSE and WebSocket, as served by package httpapi or the original
// BoxRun server) over TCP or a Unix socket.
//
// # Usage
//
//	c, err := client.New("unix:///root/.boxrun/boxrun.sock")
//	box, err := c.Create(ctx, boxapi.BoxSpec{Image: "alpine:3.20"})
//	res, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "hi"}}, os.Stdout, os.Stderr)
//
// # Errors
//
// Error responses come back as *boxapi.Error with the server's code and
// message, so errors.Is(err, boxapi.ErrNotFound) works as it does locally.
// A response body that is not the JSON error envelope becomes a
// RUNTIME_ERROR carrying the raw text. Failures to reach the server wrap
// ErrUnavailable.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// ErrUnavailable is wrapped by every error that comes from failing to reach
// the server (connection refused, missing socket, broken connection).
var ErrUnavailable = errors.New("boxrun server unavailable")

// Client is a boxapi.Service over the BoxRun HTTP API. It is safe for
// concurrent use. It holds no resources of its own beyond the HTTP client's
// idle connections; Close releases those.
type Client struct {
	base   *url.URL     // scheme + host, e.g. http://127.0.0.1:9090 or http://localhost for a socket
	http   *http.Client // never nil
	token  string       // bearer token, "" for none
	socket string       // Unix socket path, "" for TCP
}

var _ boxapi.Service = (*Client)(nil)

// Option configures a Client in New.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client used for every request. For a Unix
// socket address New installs its own transport only when this option is not
// given. The client's Timeout should be zero: streams (exec output, events,
// attach, file transfer) last as long as they last; bound calls with ctx.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: nil http client")
		}
		c.http = hc
		return nil
	}
}

// WithToken sends "Authorization: Bearer <token>" with every request, which a
// server listening on a non-loopback address requires.
func WithToken(token string) Option {
	return func(c *Client) error { c.token = token; return nil }
}

// New returns a client for the server at baseURL: "http://host:port" (a
// path prefix is kept), or "unix:///path/to.sock" / "http+unix:///path" for
// a Unix socket (the Host header is then "localhost"). New does no I/O.
func New(baseURL string, opts ...Option) (*Client, error) {
	c := &Client{}
	switch {
	case strings.HasPrefix(baseURL, "unix://"), strings.HasPrefix(baseURL, "http+unix://"):
		_, path, _ := strings.Cut(baseURL, "://")
		if path == "" {
			return nil, fmt.Errorf("client: no socket path in %q", baseURL)
		}
		c.socket = path
		c.base = &url.URL{Scheme: "http", Host: "localhost"}
	default:
		u, err := url.Parse(baseURL)
		if err != nil {
			return nil, fmt.Errorf("client: bad URL %q: %w", baseURL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("client: bad URL %q: want http://host:port or unix:///path", baseURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawQuery, u.Fragment = "", ""
		c.base = u
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if c.socket != "" {
			sock := c.socket
			tr.Proxy = nil
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}
		}
		c.http = &http.Client{Transport: tr}
	}
	return c, nil
}

// Close releases idle connections. The client stays usable; Close is
// idempotent.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// URL returns the base URL requests go to ("http://localhost" for a socket).
func (c *Client) URL() string { return c.base.String() }

// endpoint builds the URL of path (already escaped) with query q.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	if p, err := url.PathUnescape(u.RawPath); err == nil {
		u.Path = p // with RawPath its valid encoding, so String keeps RawPath
	} else {
		u.Path = u.RawPath
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// boxPath returns /v1/boxes/{box} with box escaped as one path segment.
func boxPath(box string) string { return "/v1/boxes/" + url.PathEscape(box) }

// execPath returns the path of an exec. Exec-scoped paths look the exec up by
// its ID only (spec §2.6), so the box segment is a placeholder.
func execPath(execID string) string { return "/v1/boxes/_/exec/" + url.PathEscape(execID) }

// newRequest builds a request with a JSON body (when in is non-nil) or body.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// send performs req and returns the response when its status is 2xx; any
// other status is decoded into an error and the body is closed.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, ctxErr)
		}
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, req.Method, req.URL.Path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// do sends a JSON request and decodes a JSON response into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	req, err := c.newRequest(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("%w: decode %s %s response: %w", ErrUnavailable, method, path, err)
	}
	return nil
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// decodeError turns a non-2xx response into a *boxapi.Error: the JSON
// envelope when there is one, else RUNTIME_ERROR with the raw text (or the
// status line when the body is empty).
func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Code != "" {
		return &boxapi.Error{Code: boxapi.Code(env.Code), Message: env.Message}
	}
	msg := strings.TrimSpace(string(raw))
	if msg == "" {
		msg = resp.Status
	}
	return &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: msg}
}

// Reach connects to the server's address (its Unix socket, or the host and
// port of its URL) and closes the connection again, sending no request: it
// tells whether anything listens there at the cost of a connect. Errors wrap
// ErrUnavailable. Requests check reachability themselves; Reach is for
// callers that act on it before a request (such as starting a server).
func (c *Client) Reach(ctx context.Context) error {
	network, addr := "unix", c.socket
	if addr == "" {
		network, addr = "tcp", c.base.Host
		if c.base.Port() == "" {
			port := "80"
			if c.base.Scheme == "https" {
				port = "443"
			}
			addr = net.JoinHostPort(c.base.Hostname(), port)
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("%w: connect %s: %w", ErrUnavailable, addr, err)
	}
	return conn.Close()
}
