package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/boxrun/boxrun/boxapi"
)

// BoxNetwork returns the network of a box: address, published ports (host
// ports as bound) and egress policy (extension endpoint GET
// /v1/boxes/{box}/network).
func (c *Client) BoxNetwork(ctx context.Context, box string) (*boxapi.NetInfo, error) {
	var info boxapi.NetInfo
	if err := c.do(ctx, http.MethodGet, "/v1/boxes/"+url.PathEscape(box)+"/network", nil, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// SetBoxEgress replaces the egress policy of a box; on a running box it
// takes effect at once (extension endpoint PUT
// /v1/boxes/{box}/network/egress).
func (c *Client) SetBoxEgress(ctx context.Context, box string, p boxapi.EgressPolicy) (*boxapi.NetInfo, error) {
	var info boxapi.NetInfo
	if err := c.do(ctx, http.MethodPut, "/v1/boxes/"+url.PathEscape(box)+"/network/egress", nil, p, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
