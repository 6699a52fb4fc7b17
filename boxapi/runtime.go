package boxapi

// BoxRuntime is how the driver runs one box right now (extension endpoint
// GET /v1/boxes/{id}/runtime): the driver's name and what it reports about
// the box. For gVisor, Details["agent"] is "connected" (execs go through
// the in-box agent), "fallback" (the agent does not answer: execs use
// `runsc exec`; Details["agent_error"] says why) or is absent while the
// box is not running. Details is never nil.
type BoxRuntime struct {
	BoxID   string            `json:"box_id"`
	Driver  string            `json:"driver"`
	Details map[string]string `json:"details"`
}
