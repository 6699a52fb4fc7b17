package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// sseWriter writes Server-Sent Events, flushing each one.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE writes the stream's headers (spec §6.1) and lifts deadlines.
func startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	_ = sw.rc.SetWriteDeadline(time.Time{})
	_ = sw.rc.Flush()
	return sw
}

// event writes one event; id < 0 writes no id line. data must be one line.
func (sw *sseWriter) event(name string, id int64, data []byte) error {
	var b strings.Builder
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteByte('\n')
	if id >= 0 {
		b.WriteString("id: ")
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte('\n')
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	if _, err := sw.w.Write([]byte(b.String())); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// comment writes a keep-alive comment.
func (sw *sseWriter) comment() error {
	if _, err := sw.w.Write([]byte(":\n\n")); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// encodingHeader names the encoding of exec event data (extension).
const encodingHeader = "X-Boxrun-Encoding"

// sseData is the data object of an exec event: exactly stream, data, seq.
type sseData struct {
	Stream *string `json:"stream"`
	Data   string  `json:"data"`
	Seq    int64   `json:"seq"`
	// Exec is the final exec record on the exit event when the client
	// asked for it with ?record=1 (extension); never sent otherwise.
	Exec *boxapi.Exec `json:"exec,omitempty"`
}

// resumeFrom reads the resume point of the extension: ?since=N, else the
// Last-Event-ID header. ok is false when neither is given (full replay).
func resumeFrom(r *http.Request) (after int64, ok bool, err error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		v = strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	}
	if v == "" {
		return -1, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -1 {
		return 0, false, badRequest("since / Last-Event-ID must be an integer seq")
	}
	return n, true, nil
}

// handleExecEvents streams an exec's output (spec §6): replay, then live,
// each seq once, ending after the exit event. Ordering, gap-freedom and the
// subscribe/replay race are Service.ExecEvents' job; this handler frames the
// events and keeps the connection alive.
//
// With ?encoding=base64 (extension), the data of stdout/stderr events is the
// standard base64 of the output's raw bytes, and the response carries
// "X-Boxrun-Encoding: base64"; without it, data is text as the spec says
// (invalid UTF-8 replaced by U+FFFD, as the original did). With ?record=1
// (extension), the exit event also carries the final exec record under
// "exec", so a client needs no GET after the stream.
func (s *Server) handleExecEvents(w http.ResponseWriter, r *http.Request, p params) error {
	after, resume, err := resumeFrom(r)
	if err != nil {
		return err
	}
	b64 := false
	switch enc := r.URL.Query().Get("encoding"); enc {
	case "", "text":
	case "base64":
		b64 = true
	default:
		return badRequest("Unknown encoding: " + enc + " (expected text or base64)")
	}
	withRecord := false
	switch v := r.URL.Query().Get("record"); v {
	case "", "0", "false":
	case "1", "true":
		withRecord = true
	default:
		return badRequest("Invalid record: " + v + " (expected 1 or 0)")
	}
	if _, err := s.svc.GetExec(r.Context(), p.exec); err != nil {
		return err
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()

	events := make(chan boxapi.ExecEvent)
	done := make(chan error, 1)
	go func() {
		done <- s.svc.ExecEvents(ctx, p.exec, after, func(ev boxapi.ExecEvent) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() { cancel(); <-done }()

	if b64 {
		w.Header().Set(encodingHeader, "base64")
	}
	sw := startSSE(w)
	tick := time.NewTicker(s.keepAlive)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			id := int64(-1)
			if resume {
				id = ev.Seq
			}
			d := sseData{Data: ev.Data, Seq: ev.Seq}
			if ev.Kind == boxapi.KindLog {
				if b64 {
					d.Data = base64.StdEncoding.EncodeToString([]byte(ev.Data))
				} else {
					d.Data = strings.ToValidUTF8(ev.Data, "\uFFFD")
				}
			}
			if ev.Stream != "" {
				d.Stream = &ev.Stream
			}
			if withRecord && ev.Kind == boxapi.KindExit {
				// The exit event and the final record are stored together:
				// the record read now is final. Without it the client GETs.
				if e, err := s.svc.GetExec(ctx, p.exec); err == nil && e.Status != boxapi.ExecRunning {
					d.Exec = e
				}
			}
			data, _ := json.Marshal(d)
			if err := sw.event(string(ev.Kind), id, data); err != nil {
				return nil // client gone
			}
			if ev.Kind == boxapi.KindExit {
				return nil
			}
			tick.Reset(s.keepAlive)
		case err := <-done:
			done <- err // for the deferred receive
			if err != nil && ctx.Err() == nil {
				s.log.Warn("exec event stream ended", "exec", p.exec, "err", err)
			}
			return nil
		case <-tick.C:
			if err := sw.comment(); err != nil {
				return nil
			}
		}
	}
}

// streamContext is the context of a streaming request: it ends with the
// request or when Serve shuts down.
func (s *Server) streamContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-s.drain:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// handleEvents streams Manager events (extension): event: <type>,
// id: <seq> when journaled, data: the Event JSON.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ params) error {
	q := r.URL.Query()
	filter := boxapi.EventFilter{BoxID: q.Get("box_id"), Replay: q.Get("replay") == "true"}
	for _, t := range q["type"] {
		filter.Types = append(filter.Types, boxapi.EventType(t))
	}
	if v := q.Get("after_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("after_seq must be an integer")
		}
		filter.AfterSeq = n
	} else if v := strings.TrimSpace(r.Header.Get("Last-Event-ID")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("Last-Event-ID must be an integer")
		}
		filter.AfterSeq, filter.Replay = n, true
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	sub, err := s.svc.Subscribe(ctx, filter)
	if err != nil {
		return err
	}
	defer sub.Close()

	sw := startSSE(w)
	tick := time.NewTicker(s.keepAlive)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				if err := sub.Err(); err != nil && ctx.Err() == nil {
					_, env := toEnvelope(err)
					data, _ := json.Marshal(env)
					_ = sw.event("error", -1, data)
				}
				return nil
			}
			data, err := json.Marshal(ev)
			if err != nil {
				s.log.Warn("cannot encode event", "type", ev.Type, "err", err)
				continue
			}
			id := int64(-1)
			if ev.Seq > 0 {
				id = ev.Seq
			}
			if err := sw.event(string(ev.Type), id, data); err != nil {
				return nil
			}
			tick.Reset(s.keepAlive)
		case <-tick.C:
			if err := sw.comment(); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}
