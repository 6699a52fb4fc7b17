package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/boxrun/boxrun/boxapi"
)

var _ boxapi.Snapshotter = (*Client)(nil)

// Checkpoint implements boxapi.Snapshotter: POST /v1/boxes/{box}:checkpoint
// (extension).
func (c *Client) Checkpoint(ctx context.Context, box string, opts boxapi.CheckpointOptions) (*boxapi.Snapshot, error) {
	var s boxapi.Snapshot
	if err := c.do(ctx, http.MethodPost, boxPath(box)+":checkpoint", nil, opts, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Snapshots implements boxapi.Snapshotter: GET /v1/snapshots (extension).
func (c *Client) Snapshots(ctx context.Context) ([]*boxapi.Snapshot, error) {
	var out []*boxapi.Snapshot
	if err := c.do(ctx, http.MethodGet, "/v1/snapshots", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetSnapshot implements boxapi.Snapshotter: GET /v1/snapshots/{id}
// (extension).
func (c *Client) GetSnapshot(ctx context.Context, id string) (*boxapi.Snapshot, error) {
	var s boxapi.Snapshot
	if err := c.do(ctx, http.MethodGet, snapPath(id), nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// RemoveSnapshot implements boxapi.Snapshotter: DELETE /v1/snapshots/{id}
// (extension).
func (c *Client) RemoveSnapshot(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, snapPath(id), nil, nil, nil)
}

// Restore implements boxapi.Snapshotter: POST /v1/snapshots/{id}:restore
// (extension).
func (c *Client) Restore(ctx context.Context, snapshot string, spec boxapi.RestoreSpec) (*boxapi.Box, error) {
	var b boxapi.Box
	if err := c.do(ctx, http.MethodPost, snapPath(snapshot)+":restore", nil, spec, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Fork implements boxapi.Snapshotter: POST /v1/boxes/{box}:fork
// (extension).
func (c *Client) Fork(ctx context.Context, box string, n int) ([]*boxapi.Box, error) {
	in := struct {
		Count int `json:"count"`
	}{n}
	var out []*boxapi.Box
	if err := c.do(ctx, http.MethodPost, boxPath(box)+":fork", nil, in, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// snapPath is the path of a snapshot.
func snapPath(id string) string { return "/v1/snapshots/" + url.PathEscape(id) }

// Hibernate implements boxapi.Snapshotter: POST /v1/boxes/{box}:hibernate
// (extension).
func (c *Client) Hibernate(ctx context.Context, box string) (*boxapi.Box, error) {
	return c.boxAction(ctx, box, "hibernate")
}
