package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// handleWatch serves GET /v1/boxes/{id}/watch?path=P (extension): an SSE
// stream of a file watch. Every event is "event: <type>" (ready, created,
// modified, removed, renamed, overflow) with "id: <seq>" on changes and
// the FileEvent JSON as data; "end" when the watch ended (box stopped or
// path removed), "error" with the envelope on a later failure.
// ?recursive=1 watches subdirectories; ?watch_id=W&since=N (or
// Last-Event-ID) resumes watch W after seq N. Errors before the ready
// event (BOX_NOT_FOUND, BOX_NOT_RUNNING, FILE_NOT_FOUND, VALIDATION_ERROR)
// are plain JSON responses.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, p params) error {
	q := r.URL.Query()
	path := q.Get("path")
	opts := boxapi.WatchOptions{WatchID: q.Get("watch_id")}
	switch strings.ToLower(q.Get("recursive")) {
	case "", "0", "false":
	case "1", "true":
		opts.Recursive = true
	default:
		return badRequest("recursive must be 1, true, 0 or false")
	}
	if path == "" && opts.WatchID == "" {
		return badRequest("path is required")
	}
	if path != "" && (!strings.HasPrefix(path, "/") || strings.ContainsRune(path, 0)) {
		return badRequest("path must be an absolute path in the box")
	}
	if opts.WatchID != "" {
		after, ok, err := resumeFrom(r)
		if err != nil {
			return err
		}
		if ok {
			opts.AfterSeq = after
		}
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	var sw *sseWriter
	err := s.svc.Watch(ctx, p.box, path, opts, func(ev boxapi.FileEvent) error {
		if sw == nil {
			sw = startSSE(w)
		}
		data, _ := json.Marshal(ev)
		id := ev.Seq
		if ev.Type == boxapi.FileWatchReady {
			id = -1
		}
		return sw.event(string(ev.Type), id, data)
	})
	if sw == nil {
		return err // before the stream: a plain error response
	}
	if err != nil && ctx.Err() == nil {
		_, env := toEnvelope(err)
		data, _ := json.Marshal(env)
		_ = sw.event("error", -1, data)
		return nil
	}
	if ctx.Err() == nil {
		_ = sw.event("end", -1, []byte(`{"reason":"watch ended"}`))
	}
	return nil
}
