// Package agentproto is the wire protocol between a boxrun driver on the
// host and the agent inside a box: the QEMU guest agent (over a
// virtio-serial port) and the gVisor box's init (over a Unix socket, see
// driver/gvisor/boxinit). One byte stream is multiplexed with yamux (see
// Config); every operation is one yamux stream that starts with a Request
// frame from the host, carries data frames both ways, and ends with a
// Result (or Exit) frame from the agent.
//
// A frame is a 1-byte type, a 4-byte big-endian payload length and the
// payload. JSON frames hold a Request, Result or Exit; data frames hold raw
// bytes of one stream (stdin, stdout, stderr or a tar stream). An exec may
// instead get its stdout and stderr over host-connected sockets (see
// Request.HostOut and hostout.go).
//
// The host treats every frame from an agent as hostile: the agent runs
// inside the box, and code in the box can replace it. ReadFrame never
// allocates more than MaxPayload for one frame, Conn (the host side) fails
// the one operation that got a malformed, unknown or out-of-place frame
// with an error wrapping ErrProtocol, and the decoder is fuzzed
// (FuzzReadFrame, FuzzExecStream).
package agentproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"
)

// Frame types.
const (
	FrameRequest byte = 1 // host→agent: JSON Request, first frame of a stream
	FrameResult  byte = 2 // agent→host: JSON Result (op started, or finished)
	FrameData    byte = 3 // stdin (host→agent) or a tar stream (either way)
	FrameEOF     byte = 4 // end of FrameData in this direction
	FrameStdout  byte = 5 // agent→host: stdout (or TTY output)
	FrameStderr  byte = 6 // agent→host: stderr
	FrameExit    byte = 7 // agent→host: JSON Exit, last frame of an exec
	FrameEvent   byte = 8 // agent→host: JSON WatchEvent of a watch
)

// MaxPayload bounds a frame's payload; data frames are at most DataChunk.
// DataChunk is large because every frame costs the agent a few system
// calls, and inside gVisor a system call costs microseconds: 256 KiB
// frames keep a box's output at pipe speed (see BENCHMARKS.md).
const (
	MaxPayload = 1 << 20
	DataChunk  = 256 << 10
)

// Operations (Request.Op).
const (
	OpPing     = "ping"     // Result only
	OpSetup    = "setup"    // mount the rootfs and volumes; idempotent
	OpExec     = "exec"     // Result (started or not), output frames, Exit
	OpSignal   = "signal"   // signal the process group of exec ID
	OpResize   = "resize"   // resize the terminal of exec ID
	OpCopyIn   = "copyin"   // host sends a tar as FrameData+FrameEOF, then Result
	OpCopyOut  = "copyout"  // agent sends a tar as FrameData+FrameEOF, then Result
	OpShutdown = "shutdown" // kill everything, sync, power off; Result first
	OpStats    = "stats"    // Result with Stats: the box's own view of its use
	OpWatch    = "watch"    // Result (watching or not), then FrameEvent frames (see Watch)
	OpList     = "list"     // Result with Entries: the directory Path (see List)
	// OpPrepareOut prepares an output socket pair for a later exec (see
	// outpair.go): Result with HostOut, the host connects, then Result.
	OpPrepareOut = "prepareout"
)

// AgentInfo is Result.Info of ping and setup: the agent's protocol
// version. Bump it when the agent learns something the host relies on (2:
// Request.User, TTY stdin EOF; 3: Request.Session; 4: Setup.Net, OpStats;
// 5: Request.HostOut, see hostout.go; 6: OpPrepareOut, Request.OutPair,
// see outpair.go); the QEMU driver refuses an agent that differs. A
// capability a host may find missing in a box started with an older agent
// is negotiated per request instead (HostOut, OutPair).
const AgentInfo = "boxrun-agent/6"

// Error kinds (Result.Kind), mapped to boxrun error kinds by the driver.
const (
	KindNotFound = "not_found"
	KindInvalid  = "invalid"
	KindOther    = "other"
)

// Request is the first frame of every stream.
type Request struct {
	Op  string   `json:"op"`
	ID  string   `json:"id,omitempty"`  // exec ID (exec, signal, resize)
	Cmd []string `json:"cmd,omitempty"` // exec
	Env []string `json:"env,omitempty"` // exec: the whole environment
	Dir string   `json:"dir,omitempty"` // exec working directory
	// StrictDir fails an exec whose Dir is missing instead of creating it.
	StrictDir bool   `json:"strict_dir,omitempty"`
	TTY       bool   `json:"tty,omitempty"`  // exec on a pty
	Rows      uint16 `json:"rows,omitempty"` // exec (TTY), resize
	Cols      uint16 `json:"cols,omitempty"` // exec (TTY), resize
	Signal    int    `json:"signal,omitempty"`
	// Session widens a signal to every process in the session the exec
	// leads (a TTY exec runs in its own session): a shell's background
	// jobs sit in process groups of their own.
	Session bool   `json:"session,omitempty"`
	Path    string `json:"path,omitempty"` // copyin destination dir, copyout source, watch path
	// Recursive (watch) watches every directory below Path as well.
	Recursive bool   `json:"recursive,omitempty"`
	Setup     *Setup `json:"setup,omitempty"`
	User      *User  `json:"user,omitempty"` // exec: run as; nil is root
	// HostOut (exec, not TTY) asks the agent to give the process a
	// host-connected stdout and stderr instead of relaying them in
	// frames (see hostout.go). An agent that cannot ignores it.
	HostOut bool `json:"host_out,omitempty"`
	// OutPair (exec, with HostOut) names an output pair this connection
	// prepared (OpPrepareOut); the agent uses it when it still holds it
	// and says so in the Result with PID (Result.OutPair).
	OutPair string `json:"out_pair,omitempty"`
}

// User is the identity of an exec.
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"` // supplementary groups
}

// Setup tells the agent how to prepare the box after boot.
type Setup struct {
	TimeUnixNano int64   `json:"time_unix_nano"`    // host clock, to set the guest clock
	Entropy      []byte  `json:"entropy,omitempty"` // mixed into the guest RNG, which is reseeded
	Hostname     string  `json:"hostname"`
	RootDevice   string  `json:"root_device"` // e.g. /dev/vda (ext4)
	Workdir      string  `json:"workdir"`     // created if missing
	Volumes      []Mount `json:"volumes,omitempty"`
	// Net configures the box's network interface (the first one besides
	// lo) and its /etc/resolv.conf; nil leaves it down.
	Net *NetSetup `json:"net,omitempty"`
}

// NetSetup is the network of a VM box: a point-to-point IPv4 link to the
// host, whose end (Gateway) is its router and DNS resolver.
type NetSetup struct {
	Address string `json:"address"` // the box's address with its prefix, "10.223.4.6/30"
	Gateway string `json:"gateway"` // default route and nameserver, "10.223.4.5"
}

// Stats is what the agent reports for OpStats: the box's own view, from
// its kernel. A box can lie about it (the agent runs inside the box), so
// hosts use it for display only, never to enforce anything. Unknown values
// are -1.
type Stats struct {
	MemoryBytes      int64 `json:"memory_bytes"`       // in use: total minus available
	MemoryTotalBytes int64 `json:"memory_total_bytes"` // what the kernel manages
	Processes        int64 `json:"processes"`
	// CPUTimeNS is the CPU time the box's kernel has spent on it (user,
	// nice, system, irq and steal of /proc/stat's cpu line), cumulative;
	// nil when unknown (an older agent sends none).
	CPUTimeNS *int64 `json:"cpu_time_ns,omitempty"`
}

// Mount is a virtiofs volume: Tag mounted at Path inside the rootfs.
type Mount struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

// Result reports the outcome of an operation (or that an exec started).
type Result struct {
	Error  string `json:"error,omitempty"`
	Kind   string `json:"kind,omitempty"`   // with Error: KindNotFound, KindInvalid or KindOther
	PID    int    `json:"pid,omitempty"`    // exec: guest PID
	Info   string `json:"info,omitempty"`   // ping/setup: agent description
	Uptime int64  `json:"uptime,omitempty"` // ping/setup: guest uptime in ms
	Stats  *Stats `json:"stats,omitempty"`  // stats
	// Entries (list) are the directory's entries, sorted by name; Truncated
	// says that more did not fit (ListLimit, MaxPayload).
	Entries   []DirEntry `json:"entries,omitempty"`
	Truncated bool       `json:"truncated,omitempty"`
	// HostOut (exec) is a first Result, before the one with PID: the
	// agent listens on the exec's output socket (OutSocketName) and the
	// host is to connect its stdout and stderr there.
	HostOut bool `json:"host_out,omitempty"`
	// OutPair (exec, the Result with PID) says the process writes to the
	// prepared pair named by Request.OutPair.
	OutPair bool `json:"out_pair,omitempty"`
}

// Exit ends an exec stream.
type Exit struct {
	Code  int    `json:"code"` // 128+n when killed by signal n
	Error string `json:"error,omitempty"`
}

// ErrProtocol is wrapped by the errors of Conn when the agent broke the
// protocol: a malformed, oversized, unknown or out-of-place frame, or a
// handshake that never came. Only the operation that got it fails.
var ErrProtocol = errors.New("agentproto: agent broke the protocol")

// ErrFrameTooLarge is returned by ReadFrame for an oversized frame. It
// wraps ErrProtocol.
var ErrFrameTooLarge = fmt.Errorf("agentproto: frame too large: %w", ErrProtocol)

// WriteFrame writes one frame. Callers serialize writes to w.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := AppendFrame(w, nil, typ, payload)
	return err
}

// AppendFrame writes one frame as a single Write, building it in buf
// (grown as needed), and returns the buffer for reuse: a writer of many
// frames allocates once. Callers serialize writes to w.
func AppendFrame(w io.Writer, buf []byte, typ byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return buf, ErrFrameTooLarge
	}
	buf = append(buf[:0], typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	buf = append(buf, payload...)
	_, err := w.Write(buf)
	return buf, err
}

// WriteJSON writes v as a JSON frame of type typ.
func WriteJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, typ, b)
}

// ReadFrame reads one frame into a fresh payload.
func ReadFrame(r io.Reader) (typ byte, payload []byte, err error) {
	return ReadFrameInto(r, nil)
}

// ReadFrameInto reads one frame, reusing buf for the payload when it is
// large enough (the payload is then only valid until the next read into
// buf). It never allocates more than MaxPayload.
func ReadFrameInto(r io.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > MaxPayload {
		return 0, nil, ErrFrameTooLarge
	}
	if uint32(cap(buf)) >= n {
		payload = buf[:n]
	} else {
		payload = make([]byte, n)
	}
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("agentproto: short frame: %w", io.ErrUnexpectedEOF)
	}
	return hdr[0], payload, nil
}

// ReadJSON reads a frame that must be of type want and decodes it into v.
func ReadJSON(r io.Reader, want byte, v any) error {
	typ, payload, err := ReadFrame(r)
	if err != nil {
		return err
	}
	if typ != want {
		return fmt.Errorf("agentproto: got frame type %d, want %d: %w", typ, want, ErrProtocol)
	}
	return json.Unmarshal(payload, v)
}

// DataWriter turns writes into FrameData frames of at most DataChunk bytes.
type DataWriter struct {
	W   io.Writer
	Typ byte // FrameData, FrameStdout or FrameStderr
}

// Write writes p as one or more frames.
func (d DataWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), DataChunk)
		if err := WriteFrame(d.W, d.Typ, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// DataReader reads the payloads of FrameData frames until FrameEOF. Any
// other frame type is an error.
type DataReader struct {
	R   io.Reader
	buf []byte
	eof bool
}

// Read implements io.Reader.
func (d *DataReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.eof {
			return 0, io.EOF
		}
		typ, payload, err := ReadFrame(d.R)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch typ {
		case FrameData:
			d.buf = payload
		case FrameEOF:
			d.eof = true
		default:
			return 0, fmt.Errorf("agentproto: unexpected frame type %d in data: %w", typ, ErrProtocol)
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// Config is the yamux configuration both sides use: no keepalives (an
// emulated guest can stall for seconds) and no logging.
func Config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.AcceptBacklog = 1024
	c.ConnectionWriteTimeout = 5 * time.Minute
	c.StreamOpenTimeout = 5 * time.Minute
	c.StreamCloseTimeout = 5 * time.Minute
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = io.Discard
	return c
}
