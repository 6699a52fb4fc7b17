package httpapi

import (
	"net/http"

	"github.com/boxrun/boxrun/boxapi"
)

// The image endpoints are extensions (see EXTENSIONS.md): list, pull,
// remove and prune the image cache.

func (s *Server) handleImages(w http.ResponseWriter, r *http.Request, _ params) error {
	images, err := s.svc.Images(r.Context())
	if err != nil {
		return err
	}
	if images == nil {
		images = []boxapi.ImageInfo{}
	}
	writeJSON(w, http.StatusOK, images)
	return nil
}

// pullRequest is the body of POST /v1/images.
type pullRequest struct {
	Ref *string `json:"ref"`
}

func (s *Server) handlePullImage(w http.ResponseWriter, r *http.Request, _ params) error {
	var req pullRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Ref == nil {
		return missing("ref")
	}
	liftDeadlines(w)
	info, err := s.svc.PullImage(r.Context(), *req.Ref)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) handleRemoveImage(w http.ResponseWriter, r *http.Request, _ params) error {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		return badRequest("Missing ref parameter")
	}
	if err := s.svc.RemoveImage(r.Context(), ref); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{true})
	return nil
}

func (s *Server) handlePruneImages(w http.ResponseWriter, r *http.Request, _ params) error {
	discard(r)
	n, err := s.svc.PruneImages(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Removed int `json:"removed"`
	}{n})
	return nil
}
