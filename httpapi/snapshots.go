package httpapi

import (
	"net/http"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// The snapshot extension endpoints (docs/api-extensions.md, issue 14):
//
//	POST   /v1/boxes/{id}:checkpoint      {"leave_running"} → 201 Snapshot
//	POST   /v1/boxes/{id}:fork            {"count"} → 201 [Box]
//	GET    /v1/snapshots                  → 200 [Snapshot]
//	GET    /v1/snapshots/{sid}            → 200 Snapshot
//	DELETE /v1/snapshots/{sid}            → 200 {"ok": true}
//	POST   /v1/snapshots/{sid}:restore    {"name"} → 201 Box
//	POST   /v1/boxes/{id}:hibernate       → 200 Box (stopped; lifetime says hibernated)

// snapshotter returns the service's Snapshotter, or RUNTIME_ERROR.
func (s *Server) snapshotter() (boxapi.Snapshotter, error) {
	sn, ok := s.svc.(boxapi.Snapshotter)
	if !ok {
		return nil, &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: "snapshots are not available"}
	}
	return sn, nil
}

// decodeOptionalJSON decodes a JSON body into v; a request without a body
// and without a Content-Type keeps v's defaults.
func decodeOptionalJSON(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	return decodeJSON(r, v)
}

// handleCheckpoint serves POST /v1/boxes/{id}:checkpoint.
func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request, box string) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	var opts boxapi.CheckpointOptions
	if err := decodeOptionalJSON(r, &opts); err != nil {
		return err
	}
	snap, err := sn.Checkpoint(r.Context(), box, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, snap)
	return nil
}

// forkRequest is the body of POST /v1/boxes/{id}:fork.
type forkRequest struct {
	Count *int `json:"count"`
}

// handleFork serves POST /v1/boxes/{id}:fork.
func (s *Server) handleFork(w http.ResponseWriter, r *http.Request, box string) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	var req forkRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Count == nil {
		return invalid("Failed to deserialize the JSON body into the target type: missing field `count`")
	}
	boxes, err := sn.Fork(r.Context(), box, *req.Count)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, boxes)
	return nil
}

func (s *Server) handleSnapshots(w http.ResponseWriter, r *http.Request, _ params) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	list, err := sn.Snapshots(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*boxapi.Snapshot{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) handleGetSnapshot(w http.ResponseWriter, r *http.Request, p params) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	snap, err := sn.GetSnapshot(r.Context(), p.seg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}

func (s *Server) handleRemoveSnapshot(w http.ResponseWriter, r *http.Request, p params) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	if err := sn.RemoveSnapshot(r.Context(), p.seg); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{true})
	return nil
}

// handleSnapshotAction serves POST /v1/snapshots/{sid}:restore.
func (s *Server) handleSnapshotAction(w http.ResponseWriter, r *http.Request, p params) error {
	id, verb, ok := strings.Cut(p.seg, ":")
	if !ok || verb != "restore" {
		discard(r)
		return badRequest("Unknown action (expected :restore)")
	}
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	var spec boxapi.RestoreSpec
	if err := decodeOptionalJSON(r, &spec); err != nil {
		return err
	}
	box, err := sn.Restore(r.Context(), id, spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, box)
	return nil
}

// handleHibernate serves POST /v1/boxes/{id}:hibernate.
func (s *Server) handleHibernate(w http.ResponseWriter, r *http.Request, box string) error {
	discard(r)
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	b, err := sn.Hibernate(r.Context(), box)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
