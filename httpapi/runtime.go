package httpapi

import (
	"context"
	"net/http"

	"github.com/boxrun/boxrun/boxapi"
)

// runtimer is what GET /v1/boxes/{id}/runtime needs from the service (a
// local Manager).
type runtimer interface {
	BoxRuntime(ctx context.Context, box string) (*boxapi.BoxRuntime, error)
}

// handleRuntime serves GET /v1/boxes/{id}/runtime (extension): BoxRuntime.
func (s *Server) handleRuntime(w http.ResponseWriter, r *http.Request, p params) error {
	rt, ok := s.svc.(runtimer)
	if !ok {
		return &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: "box runtime details are not available"}
	}
	info, err := rt.BoxRuntime(r.Context(), boxRef(p.box))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
