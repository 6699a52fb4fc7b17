package httpapi

import (
	"context"
	"net/http"

	"github.com/boxrun/boxrun/boxapi"
)

// lister is what GET /v1/boxes/{id}/files needs from the service (a
// local Manager).
type lister interface {
	ListFiles(ctx context.Context, box, dir string) (*boxapi.FileList, error)
}

// handleListFiles serves GET /v1/boxes/{id}/files?path=DIR (extension):
// the entries of a directory in the box (default: its workdir).
func (s *Server) handleListFiles(w http.ResponseWriter, r *http.Request, p params) error {
	ls, ok := s.svc.(lister)
	if !ok {
		return &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: "listing files is not available"}
	}
	dir := r.URL.Query().Get("path")
	if dir == "" {
		dir = "."
	}
	list, err := ls.ListFiles(r.Context(), boxRef(p.box), dir)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}
