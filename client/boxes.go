package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// Info implements boxapi.Service: GET /v1/info.
func (c *Client) Info(ctx context.Context) (boxapi.Info, error) {
	var info boxapi.Info
	err := c.do(ctx, http.MethodGet, "/v1/info", nil, nil, &info)
	return info, err
}

// DriverInfo returns the server's driver name and details (extension
// endpoint GET /v1/driver).
func (c *Client) DriverInfo(ctx context.Context) (boxapi.DriverInfo, error) {
	var info boxapi.DriverInfo
	err := c.do(ctx, http.MethodGet, "/v1/driver", nil, nil, &info)
	return info, err
}

// createBoxRequest is the body of POST /v1/boxes. Zero values are sent as
// absent so that the server applies its defaults; negative values are sent
// so that it rejects them as the Manager does.
type createBoxRequest struct {
	Image      string            `json:"image"`
	Name       *string           `json:"name,omitempty"`
	CPU        int64             `json:"cpu,omitempty"`
	MemoryMB   int64             `json:"memory_mb,omitempty"`
	DiskSizeGB int64             `json:"disk_size_gb,omitempty"`
	Network    bool              `json:"network"`
	Workdir    string            `json:"workdir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Volumes    []boxapi.Volume   `json:"volumes,omitempty"`
	Pull       string            `json:"pull,omitempty"` // extension
	// Extension fields (docs/api-extensions.md).
	Ports  []boxapi.PortMapping `json:"ports,omitempty"`
	Egress *boxapi.EgressPolicy `json:"egress,omitempty"`
	// Lifetime extension: sent only when set.
	TTLMS         int64  `json:"ttl_ms,omitempty"`
	IdleTimeoutMS int64  `json:"idle_timeout_ms,omitempty"`
	OnExpire      string `json:"on_expire,omitempty"`
}

// Create implements boxapi.Service: POST /v1/boxes.
func (c *Client) Create(ctx context.Context, spec boxapi.BoxSpec) (*boxapi.Box, error) {
	req := createBoxRequest{
		Image: spec.Image, CPU: spec.CPU, MemoryMB: spec.MemoryMB, DiskSizeGB: spec.DiskSizeGB,
		Network: spec.Network, Workdir: spec.Workdir, Env: spec.Env, Volumes: spec.Volumes,
		Pull:  string(spec.Pull),
		Ports: spec.Ports, Egress: spec.Egress,
	}
	if spec.Name != "" {
		req.Name = &spec.Name
	}
	req.TTLMS, req.IdleTimeoutMS, req.OnExpire = msCeil(spec.TTL), msCeil(spec.IdleTimeout), string(spec.OnExpire)
	var box boxapi.Box
	if err := c.do(ctx, http.MethodPost, "/v1/boxes", nil, req, &box); err != nil {
		return nil, err
	}
	return &box, nil
}

// Get implements boxapi.Service: GET /v1/boxes/{box}.
func (c *Client) Get(ctx context.Context, box string) (*boxapi.Box, error) {
	var b boxapi.Box
	if err := c.do(ctx, http.MethodGet, boxPath(box), nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// List implements boxapi.Service: GET /v1/boxes[?status=].
func (c *Client) List(ctx context.Context, filter boxapi.BoxFilter) ([]*boxapi.Box, error) {
	var q url.Values
	if filter.Status != "" {
		q = url.Values{"status": {string(filter.Status)}}
	}
	var boxes []*boxapi.Box
	if err := c.do(ctx, http.MethodGet, "/v1/boxes", q, nil, &boxes); err != nil {
		return nil, err
	}
	return boxes, nil
}

// Stop implements boxapi.Service: POST /v1/boxes/{box}:stop.
func (c *Client) Stop(ctx context.Context, box string) (*boxapi.Box, error) {
	return c.boxAction(ctx, box, "stop")
}

// Start implements boxapi.Service: POST /v1/boxes/{box}:start.
func (c *Client) Start(ctx context.Context, box string) (*boxapi.Box, error) {
	return c.boxAction(ctx, box, "start")
}

func (c *Client) boxAction(ctx context.Context, box, verb string) (*boxapi.Box, error) {
	var b boxapi.Box
	if err := c.do(ctx, http.MethodPost, boxPath(box)+":"+verb, nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Remove implements boxapi.Service: DELETE /v1/boxes/{box}[?force=true].
func (c *Client) Remove(ctx context.Context, box string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, http.MethodDelete, boxPath(box), q, nil, nil)
}

// GC implements boxapi.Service: POST /v1/gc. The wire carries whole
// seconds, so olderThan is truncated to a second.
func (c *Client) GC(ctx context.Context, olderThan time.Duration) (int, error) {
	in := struct {
		OlderThan int64 `json:"older_than"`
	}{int64(olderThan / time.Second)}
	var out struct {
		Removed int `json:"removed"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/gc", nil, in, &out)
	return out.Removed, err
}

// runRequest is the body of POST /v1/run (zero values absent, as in Create).
type runRequest struct {
	Image      string            `json:"image"`
	Cmd        []string          `json:"cmd"`
	CPU        int64             `json:"cpu,omitempty"`
	MemoryMB   int64             `json:"memory_mb,omitempty"`
	DiskSizeGB int64             `json:"disk_size_gb,omitempty"`
	Network    bool              `json:"network"`
	Env        map[string]string `json:"env,omitempty"`
	Volumes    []boxapi.Volume   `json:"volumes,omitempty"`
	TimeoutMS  int64             `json:"timeout_ms,omitempty"`
	// OutputLimit is an extension (docs/api-extensions.md).
	OutputLimit int64 `json:"output_limit,omitempty"`
}

// Run implements boxapi.Service: POST /v1/run. The server removes the box
// whatever happens; the call has no timeout of its own (bound it with ctx).
func (c *Client) Run(ctx context.Context, req boxapi.RunRequest) (*boxapi.RunResult, error) {
	in := runRequest{
		Image: req.Image, Cmd: req.Cmd, CPU: req.CPU, MemoryMB: req.MemoryMB, DiskSizeGB: req.DiskSizeGB,
		Network: req.Network, Env: req.Env, Volumes: req.Volumes, TimeoutMS: req.TimeoutMS, OutputLimit: req.OutputLimit,
	}
	if in.Cmd == nil {
		in.Cmd = []string{}
	}
	var res boxapi.RunResult
	if err := c.do(ctx, http.MethodPost, "/v1/run", nil, in, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// msCeil is d in whole milliseconds, rounded away from zero so that a
// positive duration stays positive and a negative one negative.
func msCeil(d time.Duration) int64 {
	ms := d.Milliseconds()
	if time.Duration(ms)*time.Millisecond != d {
		if d > 0 {
			ms++
		} else {
			ms--
		}
	}
	return ms
}

// Lifetime implements boxapi.Service: GET /v1/boxes/{box}/lifetime.
func (c *Client) Lifetime(ctx context.Context, box string) (*boxapi.Lifetime, error) {
	var lt boxapi.Lifetime
	if err := c.do(ctx, http.MethodGet, boxPath(box)+"/lifetime", nil, nil, &lt); err != nil {
		return nil, err
	}
	lt.TTL = time.Duration(lt.TTLMS) * time.Millisecond
	lt.IdleTimeout = time.Duration(lt.IdleMS) * time.Millisecond
	return &lt, nil
}
