package boxapi

import "time"

// EventType names a Manager event.
type EventType string

// Manager event types. Box and exec lifecycle events are journaled in SQLite
// (they have a Seq and can be replayed); exec.output and image.pull are live
// only (Seq 0): an exec's output is replayed through ExecEvents instead.
const (
	EventBoxCreated  EventType = "box.created"
	EventBoxStarted  EventType = "box.started"
	EventBoxStopped  EventType = "box.stopped"
	EventBoxRemoved  EventType = "box.removed"
	EventBoxError    EventType = "box.error"
	EventExecStarted EventType = "exec.started"
	EventExecOutput  EventType = "exec.output"
	EventExecExited  EventType = "exec.exited"
	EventImagePull   EventType = "image.pull"
	// EventBoxExpired: the box's ttl or idle_timeout fired; Box is the box
	// after it was stopped (or before it was removed), Expiry says which.
	EventBoxExpired EventType = "box.expired"
)

// Event is one Manager event. Which of Box, Exec, Output and Pull is set
// depends on Type.
type Event struct {
	Seq    int64         `json:"seq"` // journal position; 0 for live-only events
	Time   time.Time     `json:"time"`
	Type   EventType     `json:"type"`
	BoxID  string        `json:"box_id,omitempty"`
	ExecID string        `json:"exec_id,omitempty"`
	Box    *Box          `json:"box,omitempty"`    // box.* events: the box after the change
	Exec   *Exec         `json:"exec,omitempty"`   // exec.started, exec.exited
	Output *ExecEvent    `json:"output,omitempty"` // exec.output
	Pull   *PullProgress `json:"pull,omitempty"`   // image.pull
	Net    *NetDenied    `json:"net,omitempty"`    // net.denied
}

// EventFilter selects events for Subscribe. The zero value selects every
// live event and replays nothing.
type EventFilter struct {
	BoxID    string      // only events of this box ID ("" for all)
	Types    []EventType // only these types (empty for all)
	Replay   bool        // first replay journaled events with Seq > AfterSeq
	AfterSeq int64
}

// Subscription is a stream of events. C is closed when the subscription ends:
// after Close, when its context ends, when the Manager closes, or when the
// subscriber falls too far behind (Err then wraps ErrCanceled; resume with
// Replay from the last Seq seen).
type Subscription interface {
	C() <-chan Event
	Err() error
	Close() error
}

// EventNetDenied is a live-only event (Seq 0): a box's connection or DNS
// lookup was denied by its egress policy. Event.Net says what and why.
const EventNetDenied EventType = "net.denied"

// NetDenied is the payload of a net.denied event.
type NetDenied struct {
	Destination string `json:"destination"` // "1.2.3.4:80/tcp", "1.2.3.4/icmp" or a domain name
	Rule        string `json:"rule"`        // the deciding rule, e.g. "deny cidr 10.0.0.0/8", "default deny"
}
