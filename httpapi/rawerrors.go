package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// net/http answers a request it cannot parse (a malformed escape such as
// "%ZZ" in the path, a bad header line, headers over the limit) itself,
// before any handler runs, with a plain-text response on the raw connection
// that it then closes. The API promises the JSON envelope for every error,
// so Serve wraps its connections and rewrites exactly that response (the
// status line, "Content-Type: text/plain; charset=utf-8", "Connection:
// close" and nothing else: a handler's response always has more headers,
// Date at least) into the envelope with code VALIDATION_ERROR.

// plainErrHeaders is what net/http writes after the status line of such a
// response.
const plainErrHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrListener wraps accepted connections in jsonErrConn.
type jsonErrListener struct{ net.Listener }

func (l jsonErrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return jsonErrConn{c}, nil
}

// jsonErrConn rewrites net/http's own plain-text error responses.
type jsonErrConn struct{ net.Conn }

func (c jsonErrConn) Write(p []byte) (int, error) {
	if b, ok := rewritePlainError(p); ok {
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewritePlainError returns the JSON form of p when p is one of net/http's
// plain-text error responses.
func rewritePlainError(p []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil, false
	}
	statusLine, body, ok := bytes.Cut(rest, []byte(plainErrHeaders))
	if !ok || bytes.Contains(statusLine, []byte("\r\n")) || len(statusLine) < 3 {
		return nil, false
	}
	code, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	msg := strings.TrimSpace(string(body))
	if msg == "400 Bad Request" {
		msg = "Bad Request: malformed request line, URL escape or header"
	}
	env, err := json.Marshal(envelope{Code: "VALIDATION_ERROR", Message: msg})
	if err != nil {
		return nil, false
	}
	env = append(env, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", statusLine, len(env))
	b.Write(env)
	return b.Bytes(), true
}

// CloseWrite half-closes the connection when the underlying one can
// (net/http uses it to flush a response before closing).
func (c jsonErrConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the underlying connection's fast path (sendfile, splice).
func (c jsonErrConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
