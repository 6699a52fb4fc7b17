package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
)

// Attach tuning. Output frames wait for a free slot (released when melody
// reports the frame sent), so the session buffer never fills: output is
// back-pressured, never dropped. The buffer keeps room for the final
// exit/error frame and the close.
const (
	attachMaxMessage = 1 << 20 // bytes of one client frame
	attachInFlight   = 256     // output frames queued to the client at once
	attachBuffer     = attachInFlight + 16
	sessionKey       = "attach"
)

// attachSession is the per-connection state, passed to melody's handlers
// through the session keys.
type attachSession struct {
	ctx    context.Context
	cancel context.CancelFunc
	stdin  *io.PipeWriter
	resize chan boxapi.TermSize
	slots  chan struct{} // one token per output frame in flight
}

// handleAttach serves the terminal WebSocket (spec §7). Query parameters
// are checked before the upgrade (400 envelope); box errors are reported
// in-band as {"type":"error"} after it. The program is killed when the
// client goes away.
func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request, p params) error {
	req, err := attachRequest(r)
	if err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return badRequest("Expected a WebSocket upgrade request")
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := s.streamContext(context.WithoutCancel(r.Context()))
	defer cancel()
	pr, pw := io.Pipe()
	sess := &attachSession{ctx: ctx, cancel: cancel, stdin: pw,
		resize: make(chan boxapi.TermSize, 8), slots: make(chan struct{}, attachInFlight)}
	req.Stdin, req.Resize = pr, sess.resize

	m := melody.New()
	defer m.Close()
	m.Config.MaxMessageSize = attachMaxMessage
	m.Config.MessageBufferSize = attachBuffer
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // checked in ServeHTTP
	var running sync.WaitGroup
	m.HandleConnect(func(ms *melody.Session) {
		running.Go(func() { s.runAttach(ms, p.box, req) })
	})
	m.HandleMessageBinary(func(ms *melody.Session, msg []byte) {
		if _, err := sess.stdin.Write(msg); err != nil {
			sess.stdin.CloseWithError(err)
		}
	})
	m.HandleMessage(func(ms *melody.Session, msg []byte) {
		if size, ok := parseResize(msg); ok {
			sess.pushResize(size)
		} else if isEOF(msg) {
			// End of input (extension): the program's terminal gets end of
			// file; later binary frames are dropped.
			sess.stdin.Close()
		}
	})
	m.HandleSentMessageBinary(func(*melody.Session, []byte) { <-sess.slots })
	m.HandleError(func(ms *melody.Session, err error) {
		if errors.Is(err, melody.ErrMessageBufferFull) {
			s.log.Error("attach: session buffer full, closing", "box", p.box)
		}
		// Any error ends the session (the program is killed).
		sess.cancel()
	})
	m.HandleDisconnect(func(*melody.Session) { sess.cancel() })
	if err := m.HandleRequestWithKeys(w, r, map[string]any{sessionKey: sess}); err != nil {
		s.log.Debug("attach upgrade failed", "box", p.box, "err", err)
	}
	// The connection is gone or closed: make sure the program dies and its
	// goroutine is done before the request ends.
	cancel()
	pw.CloseWithError(io.ErrClosedPipe)
	running.Wait()
	return nil
}

// runAttach runs the program and sends the final exit or error frame.
func (s *Server) runAttach(ms *melody.Session, box string, req boxapi.AttachRequest) {
	v, _ := ms.Get(sessionKey)
	sess := v.(*attachSession)
	req.Stdout = &wsWriter{ms: ms, sess: sess}
	code, err := s.svc.Attach(sess.ctx, box, req)
	sess.stdin.CloseWithError(io.EOF)
	var frame []byte
	if err != nil && sess.ctx.Err() == nil {
		_, env := toEnvelope(err)
		frame, _ = json.Marshal(struct {
			Type    string      `json:"type"`
			Code    boxapi.Code `json:"code"`
			Message string      `json:"message"`
		}{"error", env.Code, env.Message})
	} else {
		frame, _ = json.Marshal(struct {
			Type string `json:"type"`
			Code int    `json:"code"`
		}{"exit", code})
	}
	if sess.ctx.Err() != nil {
		_ = ms.Close()
		return
	}
	_ = ms.Write(frame)
	_ = ms.CloseWithMsg(websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

// wsWriter sends program output as binary frames, waiting for a slot.
type wsWriter struct {
	ms   *melody.Session
	sess *attachSession
}

func (w *wsWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	select {
	case w.sess.slots <- struct{}{}:
	case <-w.sess.ctx.Done():
		return 0, w.sess.ctx.Err()
	}
	if err := w.ms.WriteBinary(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// pushResize queues a resize, replacing the oldest when the queue is full
// (only the latest size matters).
func (sess *attachSession) pushResize(size boxapi.TermSize) {
	for {
		select {
		case sess.resize <- size:
			return
		default:
		}
		select {
		case <-sess.resize:
		default:
		}
	}
}

// parseResize reads a {"type":"resize","cols":N,"rows":M} control frame;
// missing cols/rows default to 80/24. Anything else is ignored (ok false).
func parseResize(msg []byte) (boxapi.TermSize, bool) {
	var ctl struct {
		Type string  `json:"type"`
		Cols *uint16 `json:"cols"`
		Rows *uint16 `json:"rows"`
	}
	if json.Unmarshal(msg, &ctl) != nil || ctl.Type != "resize" {
		return boxapi.TermSize{}, false
	}
	size := boxapi.TermSize{Cols: 80, Rows: 24}
	if ctl.Cols != nil {
		size.Cols = *ctl.Cols
	}
	if ctl.Rows != nil {
		size.Rows = *ctl.Rows
	}
	return size, true
}

// isEOF reports whether msg is the {"type":"eof"} control frame, the
// end-of-input extension (docs/api-extensions.md).
func isEOF(msg []byte) bool {
	var ctl struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(msg, &ctl) == nil && ctl.Type == "eof"
}

// attachRequest reads the query: shell (default /bin/bash, spec §7.1),
// cols, rows, term, and the cmd (repeatable) and workdir extensions.
func attachRequest(r *http.Request) (boxapi.AttachRequest, error) {
	q := r.URL.Query()
	req := boxapi.AttachRequest{Shell: "/bin/bash", Term: "xterm-256color",
		Size: boxapi.TermSize{Rows: 24, Cols: 80}, Cmd: q["cmd"], Workdir: q.Get("workdir")}
	if v := q.Get("shell"); v != "" {
		req.Shell = v
	}
	if v := q.Get("term"); v != "" {
		req.Term = v
	}
	for _, f := range []struct {
		name string
		dst  *uint16
	}{{"cols", &req.Size.Cols}, {"rows", &req.Size.Rows}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return req, badRequest("Failed to deserialize query string: " + f.name + ": invalid digit")
		}
		*f.dst = uint16(n)
	}
	if req.Workdir != "" {
		if err := checkWorkdir(req.Workdir); err != nil {
			return req, badRequest("workdir must be an absolute path (starting with /)")
		}
	}
	return req, nil
}
