package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/boxrun/boxrun/boxapi"
)

// PullImage implements boxapi.Service: POST /v1/images {"ref"}. Progress is
// published as image.pull events (see Subscribe).
func (c *Client) PullImage(ctx context.Context, ref string) (*boxapi.ImageInfo, error) {
	var info boxapi.ImageInfo
	if err := c.do(ctx, http.MethodPost, "/v1/images", nil, map[string]string{"ref": ref}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Images implements boxapi.Service: GET /v1/images.
func (c *Client) Images(ctx context.Context) ([]boxapi.ImageInfo, error) {
	var out []boxapi.ImageInfo
	err := c.do(ctx, http.MethodGet, "/v1/images", nil, nil, &out)
	return out, err
}

// RemoveImage implements boxapi.Service: DELETE /v1/images?ref=REF.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/v1/images", url.Values{"ref": {ref}}, nil, nil)
}

// PruneImages implements boxapi.Service: POST /v1/images:prune.
func (c *Client) PruneImages(ctx context.Context) (int, error) {
	var out struct {
		Removed int `json:"removed"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/images:prune", nil, nil, &out)
	return out.Removed, err
}
