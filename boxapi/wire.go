package boxapi

import (
	"encoding/json"
	"strings"
	"time"
)

// FormatTime formats t in UTC the way the BoxRun API does (chrono's
// to_rfc3339): "2006-01-02T15:04:05+00:00" with 0, 3, 6 or 9 fraction digits,
// the fewest that represent t exactly. The zero time formats as "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	layout := "2006-01-02T15:04:05"
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		layout += ".000"
	case ns%1_000 == 0:
		layout += ".000000"
	default:
		layout += ".000000000"
	}
	return t.Format(layout) + "+00:00"
}

// ParseTime parses a timestamp in the API's format (or any RFC 3339 time).
// "" parses as the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func timePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := FormatTime(t)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func derefTime(p *string) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	return ParseTime(*p)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// boxJSON is the wire shape of a Box: exactly the spec's 17 keys.
type boxJSON struct {
	ID           string            `json:"id"`
	Name         *string           `json:"name"`
	Status       BoxStatus         `json:"status"`
	Image        string            `json:"image"`
	CPU          int64             `json:"cpu"`
	MemoryMB     int64             `json:"memory_mb"`
	DiskSizeGB   int64             `json:"disk_size_gb"`
	Network      bool              `json:"network"`
	Workdir      string            `json:"workdir"`
	Env          map[string]string `json:"env"`
	Volumes      []Volume          `json:"volumes"`
	BoxliteID    *string           `json:"boxlite_id"`
	ErrorCode    *string           `json:"error_code"`
	ErrorMessage *string           `json:"error_message"`
	CreatedAt    string            `json:"created_at"`
	StartedAt    *string           `json:"started_at"`
	StoppedAt    *string           `json:"stopped_at"`
}

// MarshalJSON encodes b as the API's Box object.
func (b Box) MarshalJSON() ([]byte, error) {
	return json.Marshal(boxJSON{
		ID: b.ID, Name: strPtr(b.Name), Status: b.Status, Image: b.Image,
		CPU: b.CPU, MemoryMB: b.MemoryMB, DiskSizeGB: b.DiskSizeGB, Network: b.Network,
		Workdir: b.Workdir, Env: b.Env, Volumes: b.Volumes, BoxliteID: strPtr(b.Handle),
		ErrorCode: strPtr(b.ErrorCode), ErrorMessage: strPtr(b.ErrorMessage),
		CreatedAt: FormatTime(b.CreatedAt), StartedAt: timePtr(b.StartedAt), StoppedAt: timePtr(b.StoppedAt),
	})
}

// UnmarshalJSON decodes the API's Box object.
func (b *Box) UnmarshalJSON(data []byte) error {
	var w boxJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	created, err := ParseTime(w.CreatedAt)
	if err != nil {
		return err
	}
	started, err := derefTime(w.StartedAt)
	if err != nil {
		return err
	}
	stopped, err := derefTime(w.StoppedAt)
	if err != nil {
		return err
	}
	*b = Box{
		ID: w.ID, Name: deref(w.Name), Status: w.Status, Image: w.Image,
		CPU: w.CPU, MemoryMB: w.MemoryMB, DiskSizeGB: w.DiskSizeGB, Network: w.Network,
		Workdir: w.Workdir, Env: w.Env, Volumes: w.Volumes, Handle: deref(w.BoxliteID),
		ErrorCode: deref(w.ErrorCode), ErrorMessage: deref(w.ErrorMessage),
		CreatedAt: created, StartedAt: started, StoppedAt: stopped,
	}
	return nil
}

// execJSON is the wire shape of an Exec: exactly the spec's 11 keys.
type execJSON struct {
	ID           string            `json:"id"`
	BoxID        string            `json:"box_id"`
	Status       ExecStatus        `json:"status"`
	Cmd          []string          `json:"cmd"`
	Env          map[string]string `json:"env"`
	Workdir      *string           `json:"workdir"`
	TimeoutMS    *int64            `json:"timeout_ms"`
	ExitCode     *int              `json:"exit_code"`
	ErrorMessage *string           `json:"error_message"`
	CreatedAt    string            `json:"created_at"`
	FinishedAt   *string           `json:"finished_at"`
}

// MarshalJSON encodes e as the API's Exec object.
func (e Exec) MarshalJSON() ([]byte, error) {
	var timeout *int64
	if e.TimeoutMS > 0 {
		timeout = &e.TimeoutMS
	}
	cmd := e.Cmd
	if cmd == nil {
		cmd = []string{}
	}
	return json.Marshal(execJSON{
		ID: e.ID, BoxID: e.BoxID, Status: e.Status, Cmd: cmd, Env: e.Env,
		Workdir: strPtr(e.Workdir), TimeoutMS: timeout, ExitCode: e.ExitCode,
		ErrorMessage: strPtr(e.ErrorMessage), CreatedAt: FormatTime(e.CreatedAt),
		FinishedAt: timePtr(e.FinishedAt),
	})
}

// UnmarshalJSON decodes the API's Exec object.
func (e *Exec) UnmarshalJSON(data []byte) error {
	var w execJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	created, err := ParseTime(w.CreatedAt)
	if err != nil {
		return err
	}
	finished, err := derefTime(w.FinishedAt)
	if err != nil {
		return err
	}
	var timeout int64
	if w.TimeoutMS != nil {
		timeout = *w.TimeoutMS
	}
	*e = Exec{
		ID: w.ID, BoxID: w.BoxID, Status: w.Status, Cmd: w.Cmd, Env: w.Env,
		Workdir: deref(w.Workdir), TimeoutMS: timeout, ExitCode: w.ExitCode,
		ErrorMessage: deref(w.ErrorMessage), CreatedAt: created, FinishedAt: finished,
	}
	return nil
}

// execEventJSON is the JSON shape of an ExecEvent inside a Manager Event.
type execEventJSON struct {
	ExecID    string    `json:"exec_id"`
	Seq       int64     `json:"seq"`
	Kind      EventKind `json:"type"`
	Stream    *string   `json:"stream"`
	Data      string    `json:"data"`
	CreatedAt string    `json:"created_at"`
}

// MarshalJSON encodes an output event.
func (ev ExecEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(execEventJSON{ev.ExecID, ev.Seq, ev.Kind, strPtr(ev.Stream), ev.Data, FormatTime(ev.CreatedAt)})
}

// UnmarshalJSON decodes an output event.
func (ev *ExecEvent) UnmarshalJSON(data []byte) error {
	var w execEventJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	t, err := ParseTime(w.CreatedAt)
	if err != nil {
		return err
	}
	*ev = ExecEvent{w.ExecID, w.Seq, w.Kind, deref(w.Stream), w.Data, t}
	return nil
}

// Exit decodes the payload of an exit event. ok is false for other events or
// an undecodable payload.
func (ev ExecEvent) Exit() (info ExitInfo, ok bool) {
	if ev.Kind != KindExit {
		return ExitInfo{}, false
	}
	if err := json.NewDecoder(strings.NewReader(ev.Data)).Decode(&info); err != nil {
		return ExitInfo{}, false
	}
	return info, true
}
