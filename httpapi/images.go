package httpapi

import (
	"net/http"
	"strings"

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

// handleLoadImages imports an image archive from the request body
// (extension: POST /v1/images:load?tag=NAME…).
func (s *Server) handleLoadImages(w http.ResponseWriter, r *http.Request, _ params) error {
	tags := r.URL.Query()["tag"]
	for _, t := range tags {
		if t == "" || strings.ContainsRune(t, 0) {
			return badRequest("tag must be a non-empty image name")
		}
	}
	liftDeadlines(w)
	size := r.ContentLength
	if size < 0 {
		size = 0
	}
	infos, err := s.svc.LoadImages(r.Context(), r.Body, boxapi.LoadImagesOptions{Tags: tags, Size: size})
	if err != nil {
		return err
	}
	if infos == nil {
		infos = []boxapi.ImageInfo{}
	}
	writeJSON(w, http.StatusOK, loadResponse{Images: infos})
	return nil
}

// loadResponse is the answer of POST /v1/images:load.
type loadResponse struct {
	Images []boxapi.ImageInfo `json:"images"`
}

// tagRequest is the body of POST /v1/images:tag.
type tagRequest struct {
	Source *string `json:"source"`
	Target *string `json:"target"`
}

func (s *Server) handleTagImage(w http.ResponseWriter, r *http.Request, _ params) error {
	var req tagRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	switch {
	case req.Source == nil:
		return missing("source")
	case req.Target == nil:
		return missing("target")
	}
	info, err := s.svc.TagImage(r.Context(), *req.Source, *req.Target)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// handleSaveImages streams a docker-archive of ?ref=… (extension: GET
// /v1/images:save). Errors come as the JSON envelope: every ref is
// checked before the first byte.
func (s *Server) handleSaveImages(w http.ResponseWriter, r *http.Request, _ params) error {
	refs := r.URL.Query()["ref"]
	if len(refs) == 0 {
		return badRequest("Missing ref parameter")
	}
	liftDeadlines(w)
	lw := &lazyWriter{w: w, headers: func(h http.Header) {
		h.Set("Content-Type", "application/x-tar")
		h.Set("Content-Disposition", `attachment; filename="images.tar"`)
	}}
	return lw.finish(s.svc.SaveImages(r.Context(), lw, refs))
}
