package httpapi

import (
	"context"
	"net/http"

	"github.com/boxrun/boxrun/boxapi"
)

// networker is what the network extension endpoints need from the service
// (a local Manager).
type networker interface {
	BoxNetwork(ctx context.Context, box string) (*boxapi.NetInfo, error)
	SetBoxEgress(ctx context.Context, box string, p boxapi.EgressPolicy) (*boxapi.NetInfo, error)
}

func (s *Server) networker() (networker, error) {
	n, ok := s.svc.(networker)
	if !ok {
		return nil, &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: "box networking is not available"}
	}
	return n, nil
}

// handleNetwork serves GET /v1/boxes/{id}/network (extension): NetInfo.
func (s *Server) handleNetwork(w http.ResponseWriter, r *http.Request, p params) error {
	n, err := s.networker()
	if err != nil {
		return err
	}
	info, err := n.BoxNetwork(r.Context(), boxRef(p.box))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// handleSetEgress serves PUT /v1/boxes/{id}/network/egress (extension): the
// body is an EgressPolicy that replaces the box's; the answer is NetInfo.
func (s *Server) handleSetEgress(w http.ResponseWriter, r *http.Request, p params) error {
	n, err := s.networker()
	if err != nil {
		return err
	}
	var pol boxapi.EgressPolicy
	if err := decodeJSON(r, &pol); err != nil {
		return err
	}
	info, err := n.SetBoxEgress(r.Context(), boxRef(p.box), pol)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
