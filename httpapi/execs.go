package httpapi

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// execRequest is the body of POST /v1/boxes/{id}/exec (spec §5.8), plus the
// stdin_b64 extension.
type execRequest struct {
	Cmd       *[]string         `json:"cmd"`
	Env       map[string]string `json:"env"`
	Workdir   *string           `json:"workdir"`
	TimeoutMS *int64            `json:"timeout_ms"`
	StdinB64  *string           `json:"stdin_b64"`
	// OutputLimit is an extension (docs/api-extensions.md).
	OutputLimit *int64 `json:"output_limit"`
}

// request validates in the spec's order (cmd, workdir, timeout_ms).
func (c execRequest) request() (boxapi.ExecRequest, error) {
	var req boxapi.ExecRequest
	if err := checkCmd(c.Cmd); err != nil {
		return req, err
	}
	if c.Workdir != nil {
		if err := checkWorkdir(*c.Workdir); err != nil {
			return req, err
		}
		req.Workdir = *c.Workdir
	}
	var err error
	if req.TimeoutMS, err = checkTimeout(c.TimeoutMS); err != nil {
		return req, err
	}
	if req.OutputLimit, err = checkOutputLimit(c.OutputLimit); err != nil {
		return req, err
	}
	if c.StdinB64 != nil {
		data, err := base64.StdEncoding.DecodeString(*c.StdinB64)
		if err != nil {
			return req, invalid("stdin_b64 must be standard base64")
		}
		req.Stdin = bytes.NewReader(data)
	}
	req.Cmd, req.Env = *c.Cmd, c.Env
	return req, nil
}

func (s *Server) handleStartExec(w http.ResponseWriter, r *http.Request, p params) error {
	var body execRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	req, err := body.request()
	if err != nil {
		return err
	}
	ex, err := s.svc.StartExec(r.Context(), p.box, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ex)
	return nil
}

func (s *Server) handleListExecs(w http.ResponseWriter, r *http.Request, p params) error {
	execs, err := s.svc.ListExecs(r.Context(), p.box)
	if err != nil {
		return err
	}
	if execs == nil {
		execs = []*boxapi.Exec{}
	}
	writeJSON(w, http.StatusOK, execs)
	return nil
}

// handleGetExec serves GET .../exec/{eid}: the segment is looked up
// literally (spec §2.5), except for the ":wait" extension.
func (s *Server) handleGetExec(w http.ResponseWriter, r *http.Request, p params) error {
	var ex *boxapi.Exec
	var err error
	if id, ok := strings.CutSuffix(p.exec, ":wait"); ok {
		// A wait may last as long as the exec: it ends with the request
		// or when Serve shuts down, like a stream.
		liftDeadlines(w)
		s.streams.Add(1)
		defer s.streams.Done()
		ctx, cancel := s.streamContext(r.Context())
		defer cancel()
		ex, err = s.svc.WaitExec(ctx, id)
	} else {
		ex, err = s.svc.GetExec(r.Context(), p.exec)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}

// handleExecAction serves POST .../exec/{eid}:cancel.
func (s *Server) handleExecAction(w http.ResponseWriter, r *http.Request, p params) error {
	discard(r)
	i := strings.LastIndexByte(p.exec, ':')
	if i < 0 {
		return badRequest("Missing action (expected :cancel)")
	}
	id, verb := p.exec[:i], p.exec[i+1:]
	if verb != "cancel" {
		return badRequest("Unknown action: " + verb)
	}
	ex, err := s.svc.CancelExec(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ex)
	return nil
}
