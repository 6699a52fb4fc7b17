package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// LoadImages implements boxapi.Service with the image load extension:
// POST /v1/images:load?tag=… with the archive streamed as the body
// (Content-Length set from opts.Size when known, for the server's
// progress events).
func (c *Client) LoadImages(ctx context.Context, r io.Reader, opts boxapi.LoadImagesOptions) ([]boxapi.ImageInfo, error) {
	src := &sourceReader{r: r}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.endpoint("/v1/images:load", url.Values{"tag": opts.Tags}), io.NopCloser(src))
	if err != nil {
		return nil, fmt.Errorf("client: load images: %w", err)
	}
	if opts.Size > 0 {
		req.ContentLength = opts.Size
	}
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return nil, src.blame(err)
	}
	defer resp.Body.Close()
	var out struct {
		Images []boxapi.ImageInfo `json:"images"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("%w: decode load response: %w", ErrUnavailable, err)
	}
	return out.Images, nil
}

// TagImage implements boxapi.Service: POST /v1/images:tag
// {"source","target"}.
func (c *Client) TagImage(ctx context.Context, src, dst string) (*boxapi.ImageInfo, error) {
	var info boxapi.ImageInfo
	if err := c.do(ctx, http.MethodPost, "/v1/images:tag", nil, map[string]string{"source": src, "target": dst}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// SaveImages implements boxapi.Service: GET /v1/images:save?ref=…,
// streaming the docker-archive into w.
func (c *Client) SaveImages(ctx context.Context, w io.Writer, refs []string) error {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/images:save", url.Values{"ref": refs}, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-tar")
	return c.stream(req, w)
}
