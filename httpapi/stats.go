package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// handleStats serves GET /v1/boxes/{id}/stats (extension): one sample as
// JSON, or with ?stream=1 an SSE stream of "stats" events (data: the
// sample) every ?interval= (a Go duration, default 1s), ending with an
// "end" event when the box stops. An error after the stream began is an
// "error" event carrying the error envelope.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request, p params) error {
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" || stream == "0" || stream == "false" {
		st, err := s.svc.Stats(r.Context(), p.box)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}
	var opts boxapi.StatsOptions
	if v := q.Get("interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return badRequest("interval must be a positive duration such as 1s or 500ms")
		}
		opts.Interval = d
	}
	// Fail before the stream starts for a missing or stopped box.
	if _, err := s.svc.Get(r.Context(), p.box); err != nil {
		return err
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	var sw *sseWriter
	err := s.svc.StatsStream(ctx, p.box, opts, func(st *boxapi.Stats) error {
		if sw == nil {
			sw = startSSE(w)
		}
		data, _ := json.Marshal(st)
		return sw.event("stats", -1, data)
	})
	if sw == nil {
		if err != nil {
			return err
		}
		sw = startSSE(w)
	}
	if err != nil && ctx.Err() == nil {
		_, env := toEnvelope(err)
		data, _ := json.Marshal(env)
		_ = sw.event("error", -1, data)
		return nil
	}
	if ctx.Err() == nil {
		_ = sw.event("end", -1, []byte(`{"reason":"box not running"}`))
	}
	return nil
}
