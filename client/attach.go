package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/coder/websocket"
)

// maxFrame bounds one WebSocket message read from the server.
const maxFrame = 16 << 20

// wsControl is a text frame of the attach protocol (spec §7).
type wsControl struct {
	Type    string `json:"type"`
	Code    any    `json:"code,omitempty"` // exit: int; error: string
	Message string `json:"message,omitempty"`
	Cols    uint16 `json:"cols,omitempty"`
	Rows    uint16 `json:"rows,omitempty"`
}

// attachURL builds the ws:// URL of GET /v1/boxes/{box}/attach.
func (c *Client) attachURL(box string, req boxapi.AttachRequest) string {
	q := url.Values{}
	shell := req.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	q.Set("shell", shell)
	for _, a := range req.Cmd {
		q.Add("cmd", a)
	}
	if req.Workdir != "" {
		q.Set("workdir", req.Workdir)
	}
	term := req.Term
	if term == "" {
		term = "xterm-256color"
	}
	q.Set("term", term)
	rows, cols := req.Size.Rows, req.Size.Cols
	if rows == 0 {
		rows = 24
	}
	if cols == 0 {
		cols = 80
	}
	q.Set("rows", strconv.Itoa(int(rows)))
	q.Set("cols", strconv.Itoa(int(cols)))
	u := c.endpoint(boxPath(box)+"/attach", q)
	if c.base.Scheme == "https" {
		return "wss" + u[len("https"):]
	}
	return "ws" + u[len("http"):]
}

// Attach implements boxapi.Service over the attach WebSocket: terminal
// output arrives as binary frames and goes to req.Stdout, req.Stdin is sent
// as binary frames, and every size from req.Resize as a resize text frame.
// It returns the exit code from the server's exit frame; an error frame
// becomes a *boxapi.Error. Canceling ctx closes the socket, which makes the
// server kill the program, and returns ctx's error.
func (c *Client) Attach(ctx context.Context, box string, req boxapi.AttachRequest) (int, error) {
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, c.attachURL(box, req), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			defer resp.Body.Close()
			return -1, decodeError(resp)
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("%w: attach %s: %w", ErrUnavailable, box, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxFrame)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if req.Stdin != nil {
		go pumpStdin(sctx, conn, req.Stdin)
	}
	if req.Resize != nil {
		go pumpResize(sctx, conn, req.Resize)
	}
	out := req.Stdout
	if out == nil {
		out = io.Discard
	}
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("%w: attach %s: session ended without exit status: %w", ErrUnavailable, box, err)
		}
		if typ == websocket.MessageBinary {
			if _, err := out.Write(data); err != nil {
				return -1, fmt.Errorf("client: attach %s: write output: %w", box, err)
			}
			continue
		}
		var m wsControl
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch m.Type {
		case "exit":
			code, _ := m.Code.(float64)
			conn.Close(websocket.StatusNormalClosure, "")
			return int(code), nil
		case "error":
			code, _ := m.Code.(string)
			if code == "" {
				code = string(boxapi.CodeRuntimeError)
			}
			return -1, &boxapi.Error{Code: boxapi.Code(code), Message: m.Message}
		}
	}
}

// pumpStdin sends r as binary frames until it ends or ctx is done.
func pumpStdin(ctx context.Context, conn *websocket.Conn, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := conn.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				stdinEOF(ctx, conn)
			}
			return
		}
	}
}

// stdinEOF tells the program that terminal input ended, with the
// {"type":"eof"} control frame (an extension of BoxRun servers: the
// program's terminal then reads end of file, as the local Manager's does
// when Stdin ends; see docs/api-extensions.md). A server without the
// extension ignores the frame and the program keeps its input open.
func stdinEOF(ctx context.Context, conn *websocket.Conn) {
	b, _ := json.Marshal(wsControl{Type: "eof"})
	_ = conn.Write(ctx, websocket.MessageText, b)
}

// pumpResize sends a resize text frame for every size received.
func pumpResize(ctx context.Context, conn *websocket.Conn, sizes <-chan boxapi.TermSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-sizes:
			if !ok {
				return
			}
			b, _ := json.Marshal(wsControl{Type: "resize", Cols: s.Cols, Rows: s.Rows})
			if conn.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
		}
	}
}
