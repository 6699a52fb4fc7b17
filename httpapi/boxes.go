package httpapi

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

// createRequest is the body of POST /v1/boxes (spec §5.2).
type createRequest struct {
	Image      *string           `json:"image"`
	Name       *string           `json:"name"`
	CPU        *int64            `json:"cpu"`
	MemoryMB   *int64            `json:"memory_mb"`
	DiskSizeGB *int64            `json:"disk_size_gb"`
	Network    *bool             `json:"network"`
	Workdir    *string           `json:"workdir"`
	Env        map[string]string `json:"env"`
	Volumes    []volumeJSON      `json:"volumes"`
	Pull       *string           `json:"pull"` // extension: always, missing (default) or never
	// Extension fields (docs/api-extensions.md).
	Ports  []boxapi.PortMapping `json:"ports"`
	Egress *boxapi.EgressPolicy `json:"egress"`
	// Lifetime extension (issue 15).
	TTLMS         *int64  `json:"ttl_ms"`
	IdleTimeoutMS *int64  `json:"idle_timeout_ms"`
	OnExpire      *string `json:"on_expire"`
}

// spec validates the request in the spec's order (required fields, then
// cpu, memory_mb, disk_size_gb, workdir) and converts it.
func (c createRequest) spec() (boxapi.BoxSpec, error) {
	var spec boxapi.BoxSpec
	if c.Image == nil {
		return spec, missing("image")
	}
	vols, err := toVolumes(c.Volumes)
	if err != nil {
		return spec, err
	}
	if spec.CPU, err = positive("cpu", c.CPU, boxapi.DefaultCPU); err != nil {
		return spec, err
	}
	if spec.MemoryMB, err = positive("memory_mb", c.MemoryMB, boxapi.DefaultMemoryMB); err != nil {
		return spec, err
	}
	if spec.DiskSizeGB, err = positive("disk_size_gb", c.DiskSizeGB, boxapi.DefaultDiskSizeGB); err != nil {
		return spec, err
	}
	spec.Workdir = boxapi.DefaultWorkdir
	if c.Workdir != nil {
		if err := checkWorkdir(*c.Workdir); err != nil {
			return spec, err
		}
		spec.Workdir = *c.Workdir
	}
	spec.Image = *c.Image
	if c.Name != nil {
		spec.Name = *c.Name
	}
	spec.Network = c.Network != nil && *c.Network
	spec.Env = c.Env
	spec.Volumes = vols
	if c.Pull != nil {
		switch p := boxapi.PullPolicy(*c.Pull); p {
		case boxapi.PullAlways, boxapi.PullMissing, boxapi.PullNever:
			spec.Pull = p
		default:
			return spec, invalid("pull must be always, missing or never")
		}
	}
	spec.Ports = c.Ports
	spec.Egress = c.Egress
	if c.TTLMS != nil {
		spec.TTL = time.Duration(*c.TTLMS) * time.Millisecond
	}
	if c.IdleTimeoutMS != nil {
		spec.IdleTimeout = time.Duration(*c.IdleTimeoutMS) * time.Millisecond
	}
	if c.OnExpire != nil {
		spec.OnExpire = boxapi.ExpireAction(*c.OnExpire)
	}
	return spec, nil
}

// handleLifetime serves GET /v1/boxes/{id}/lifetime (extension).
func (s *Server) handleLifetime(w http.ResponseWriter, r *http.Request, p params) error {
	lt, err := s.svc.Lifetime(r.Context(), p.box)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lt)
	return nil
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request, _ params) error {
	info, err := s.svc.Info(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// handleDriver serves the /v1/driver extension: the driver's name and
// details, when the service is a local Manager (404 otherwise).
func (s *Server) handleDriver(w http.ResponseWriter, r *http.Request, _ params) error {
	d, ok := s.svc.(interface{ DriverInfo() boxapi.DriverInfo })
	if !ok {
		return &boxapi.Error{Code: boxapi.CodeRuntimeError, Message: "driver information is not available"}
	}
	writeJSON(w, http.StatusOK, d.DriverInfo())
	return nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, _ params) error {
	var req createRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	box, err := s.svc.Create(r.Context(), spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, box)
	return nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, _ params) error {
	boxes, err := s.svc.List(r.Context(), boxapi.BoxFilter{Status: boxapi.BoxStatus(r.URL.Query().Get("status"))})
	if err != nil {
		return err
	}
	if boxes == nil {
		boxes = []*boxapi.Box{}
	}
	writeJSON(w, http.StatusOK, boxes)
	return nil
}

// boxRef is the box of GET/DELETE /v1/boxes/{seg}: everything from the
// first ':' on is ignored (spec §2.5).
func boxRef(seg string) string {
	ref, _, _ := strings.Cut(seg, ":")
	return ref
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, p params) error {
	box, err := s.svc.Get(r.Context(), boxRef(p.box))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, box)
	return nil
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request, p params) error {
	discard(r)
	force := r.URL.Query().Get("force") == "true"
	if err := s.svc.Remove(r.Context(), boxRef(p.box), force); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{true})
	return nil
}

// handleBoxAction serves POST /v1/boxes/{id}:stop and :start; the verb is
// after the last ':' (spec §2.5).
func (s *Server) handleBoxAction(w http.ResponseWriter, r *http.Request, p params) error {
	i := strings.LastIndexByte(p.box, ':')
	if i >= 0 {
		switch id, verb := p.box[:i], p.box[i+1:]; verb {
		case "checkpoint": // extensions with a body
			return s.handleCheckpoint(w, r, id)
		case "fork":
			return s.handleFork(w, r, id)
		case "hibernate":
			return s.handleHibernate(w, r, id)
		}
	}
	discard(r)
	if i < 0 {
		return badRequest("Missing action (expected :stop or :start)")
	}
	id, verb := p.box[:i], p.box[i+1:]
	var box *boxapi.Box
	var err error
	switch verb {
	case "stop":
		box, err = s.svc.Stop(r.Context(), id)
	case "start":
		box, err = s.svc.Start(r.Context(), id)
	default:
		return badRequest("Unknown action: " + verb)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, box)
	return nil
}

// gcRequest is the body of POST /v1/gc.
type gcRequest struct {
	OlderThan *int64 `json:"older_than"`
}

func (s *Server) handleGC(w http.ResponseWriter, r *http.Request, _ params) error {
	var req gcRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	secs := int64(3600)
	if req.OlderThan != nil {
		secs = *req.OlderThan
	}
	// Clamp so the duration does not overflow (about ±292 years).
	const maxSecs = math.MaxInt64 / int64(time.Second)
	secs = max(-maxSecs, min(secs, maxSecs))
	n, err := s.svc.GC(r.Context(), time.Duration(secs)*time.Second)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Removed int `json:"removed"`
	}{n})
	return nil
}

// runRequest is the body of POST /v1/run (spec §5.16).
type runRequest struct {
	Image      *string           `json:"image"`
	Cmd        *[]string         `json:"cmd"`
	CPU        *int64            `json:"cpu"`
	MemoryMB   *int64            `json:"memory_mb"`
	DiskSizeGB *int64            `json:"disk_size_gb"`
	Network    *bool             `json:"network"`
	Env        map[string]string `json:"env"`
	Volumes    []volumeJSON      `json:"volumes"`
	TimeoutMS  *int64            `json:"timeout_ms"`
	// OutputLimit is an extension (docs/api-extensions.md).
	OutputLimit *int64 `json:"output_limit"`
}

// checkOutputLimit validates the output_limit extension field: absent or
// null is 0 (the server's default).
func checkOutputLimit(v *int64) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if *v <= 0 {
		return 0, invalid("output_limit must be a positive number of bytes")
	}
	return *v, nil
}

func (c runRequest) request() (boxapi.RunRequest, error) {
	var req boxapi.RunRequest
	if c.Image == nil {
		return req, missing("image")
	}
	if c.Cmd == nil {
		return req, missing("cmd")
	}
	vols, err := toVolumes(c.Volumes)
	if err != nil {
		return req, err
	}
	if err := checkCmd(c.Cmd); err != nil {
		return req, err
	}
	if req.CPU, err = positive("cpu", c.CPU, boxapi.DefaultCPU); err != nil {
		return req, err
	}
	if req.MemoryMB, err = positive("memory_mb", c.MemoryMB, boxapi.DefaultMemoryMB); err != nil {
		return req, err
	}
	if req.DiskSizeGB, err = positive("disk_size_gb", c.DiskSizeGB, boxapi.DefaultDiskSizeGB); err != nil {
		return req, err
	}
	if req.TimeoutMS, err = checkTimeout(c.TimeoutMS); err != nil {
		return req, err
	}
	if req.OutputLimit, err = checkOutputLimit(c.OutputLimit); err != nil {
		return req, err
	}
	req.Image, req.Cmd, req.Env, req.Volumes = *c.Image, *c.Cmd, c.Env, vols
	req.Network = c.Network != nil && *c.Network
	return req, nil
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request, _ params) error {
	var body runRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	req, err := body.request()
	if err != nil {
		return err
	}
	liftDeadlines(w)
	res, err := s.svc.Run(r.Context(), req)
	if err != nil {
		return err
	}
	// The reference always reported error_message null (spec §4.8); we set it
	// when the command failed without an exit status of its own (timeout,
	// runtime error), as docs/api-extensions.md says.
	writeJSON(w, http.StatusOK, runResult{res.ExitCode, res.Stdout, res.Stderr, res.ErrorMessage})
	return nil
}

// runResult is the wire RunResult: exactly four keys.
type runResult struct {
	ExitCode     *int    `json:"exit_code"`
	Stdout       string  `json:"stdout"`
	Stderr       string  `json:"stderr"`
	ErrorMessage *string `json:"error_message"`
}

// liftDeadlines removes the connection's read and write deadlines for a
// long-running request, when the http.Server set any.
func liftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
}
