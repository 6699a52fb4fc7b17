package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/boxrun/boxrun/boxapi"
)

// BoxRuntime returns how the server's driver runs a box right now, e.g.
// whether its execs go through the in-box agent (extension endpoint GET
// /v1/boxes/{box}/runtime).
func (c *Client) BoxRuntime(ctx context.Context, box string) (*boxapi.BoxRuntime, error) {
	var rt boxapi.BoxRuntime
	if err := c.do(ctx, http.MethodGet, "/v1/boxes/"+url.PathEscape(box)+"/runtime", nil, nil, &rt); err != nil {
		return nil, err
	}
	return &rt, nil
}
