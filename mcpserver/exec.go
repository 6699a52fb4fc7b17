package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type execArgs struct {
	Box            string            `json:"box" jsonschema:"the box ID or name"`
	Cmd            []string          `json:"cmd,omitempty" jsonschema:"program and arguments, run without a shell, e.g. [\"ls\", \"-l\", \"/\"]; give cmd or shell"`
	Shell          string            `json:"shell,omitempty" jsonschema:"a shell command line, run as /bin/sh -c SHELL (the image needs /bin/sh); give cmd or shell"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables for this command"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"working directory (absolute; default: the box's workdir)"`
	TimeoutSeconds float64           `json:"timeout_seconds,omitempty" jsonschema:"kill the command after this many seconds (default 600, at most 86400)"`
	Stdin          string            `json:"stdin,omitempty" jsonschema:"text given to the command's standard input (default: none)"`
}

// execResult is the result of the exec tool.
type execResult struct {
	ExecID          string `json:"exec_id"`
	Status          string `json:"status"`    // succeeded, failed or canceled
	ExitCode        *int   `json:"exit_code"` // null when the command did not exit by itself
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`
	Error           string `json:"error,omitempty"` // e.g. the timeout
}

func (s *session) addExecTool(srv *mcp.Server) {
	addTool(s, srv, &mcp.Tool{
		Name:  "exec",
		Title: "Run a command in a box",
		Description: "Run a command in a running box and wait for it to finish. Returns the exit code, stdout and " +
			"stderr (each cut to its first and last bytes with a '[... N bytes truncated ...]' marker when long). " +
			"A non-zero exit code is a normal result, not an error. With a progress token, output is streamed " +
			"as progress notifications while the command runs. Canceling the call kills the command.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(false)},
	}, func(sc *jsonschema.Schema) {
		setMin(sc, "timeout_seconds", 0)
		setMax(sc, "timeout_seconds", maxExecTimeout.Seconds())
		sc.Properties["cmd"].MinItems = ptr(1)
	}, s.exec)
}

func (s *session) exec(ctx context.Context, req *mcp.CallToolRequest, in execArgs) (any, error) {
	var cmd []string
	switch {
	case len(in.Cmd) > 0 && in.Shell != "":
		return nil, invalidf("give either cmd or shell, not both")
	case len(in.Cmd) > 0:
		if in.Cmd[0] == "" {
			return nil, invalidf("cmd[0] (the program) must not be empty")
		}
		cmd = in.Cmd
	case in.Shell != "":
		cmd = []string{"/bin/sh", "-c", in.Shell}
	default:
		return nil, invalidf("cmd or shell is required")
	}
	if in.TimeoutSeconds < 0 || in.TimeoutSeconds > maxExecTimeout.Seconds() {
		return nil, invalidf("timeout_seconds must be between 0 and %d, got %v", int(maxExecTimeout.Seconds()), in.TimeoutSeconds)
	}
	if in.Workdir != "" {
		if _, err := checkBoxPath("workdir", in.Workdir); err != nil {
			return nil, err
		}
	}
	timeout := s.srv.cfg.ExecTimeout
	if in.TimeoutSeconds > 0 {
		timeout = time.Duration(in.TimeoutSeconds * float64(time.Second))
		if timeout < time.Millisecond {
			timeout = time.Millisecond
		}
	}
	b, err := s.resolve(ctx, in.Box)
	if err != nil {
		return nil, err
	}
	er := boxapi.ExecRequest{Cmd: cmd, Env: in.Env, Workdir: in.Workdir, TimeoutMS: timeout.Milliseconds()}
	if in.Stdin != "" {
		er.Stdin = strings.NewReader(in.Stdin)
	}

	max := s.srv.cfg.MaxOutputBytes
	prog := &progress{}
	stdout := &capture{half: max / 2, prog: prog}
	stderr := &capture{half: max / 2, prog: prog}
	if token := req.Params.GetProgressToken(); token != nil && req.Session != nil {
		stop := s.streamProgress(ctx, req.Session, token, prog)
		defer stop()
	}
	x, err := s.srv.svc.Exec(ctx, b.ID, er, stdout, stderr)
	if ctx.Err() != nil {
		return nil, boxapi.Errorf(boxapi.CodeCanceled, "Exec canceled by the client")
	}
	if err != nil {
		return nil, err
	}
	res := execResult{ExecID: x.ID, Status: string(x.Status), ExitCode: x.ExitCode, Error: x.ErrorMessage}
	res.Stdout, res.StdoutTruncated = stdout.String()
	res.Stderr, res.StderrTruncated = stderr.String()
	return res, nil
}

// streamProgress sends the output gathered in prog as progress notifications
// at most every ProgressInterval until the returned stop is called (which
// sends what is left).
func (s *session) streamProgress(ctx context.Context, ss *mcp.ServerSession, token any, prog *progress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	send := func() {
		msg, total, ok := prog.take()
		if !ok {
			return
		}
		_ = ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Progress: float64(total), Message: msg})
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(s.srv.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				send()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		if ctx.Err() == nil {
			send()
		}
	}
}

// maxProgressMessage bounds the output one progress notification carries.
const maxProgressMessage = 16 << 10

// progress collects the output of an exec not yet sent as a notification.
type progress struct {
	mu      sync.Mutex
	pending []byte
	dropped int64
	total   int64
}

func (p *progress) add(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += int64(len(b))
	room := maxProgressMessage - len(p.pending)
	if room <= 0 {
		p.dropped += int64(len(b))
		return
	}
	if len(b) > room {
		p.dropped += int64(len(b) - room)
		b = b[:room]
	}
	p.pending = append(p.pending, b...)
}

// take returns the pending output (with a marker for what did not fit) and
// the total byte count, or ok false when there is nothing new.
func (p *progress) take() (msg string, total int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 && p.dropped == 0 {
		return "", p.total, false
	}
	msg = strings.ToValidUTF8(string(p.pending), "\uFFFD")
	if p.dropped > 0 {
		msg += fmt.Sprintf("\n[... %d bytes not shown ...]\n", p.dropped)
	}
	p.pending, p.dropped = p.pending[:0], 0
	return msg, p.total, true
}

// capture keeps the first and last half bytes of a stream (an io.Writer
// safe for concurrent use) and forwards everything to prog.
type capture struct {
	half int
	prog *progress

	mu    sync.Mutex
	head  []byte
	tail  []byte
	total int64
}

func (c *capture) Write(b []byte) (int, error) {
	c.prog.add(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(b))
	rest := b
	if room := c.half - len(c.head); room > 0 {
		n := min(room, len(rest))
		c.head = append(c.head, rest[:n]...)
		rest = rest[n:]
	}
	if len(rest) > 0 {
		c.tail = append(c.tail, rest...)
		if len(c.tail) > 2*c.half {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-c.half:]...)
		}
	}
	return len(b), nil
}

// String returns the captured text and whether bytes were dropped.
func (c *capture) String() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tail := c.tail
	if len(tail) > c.half {
		tail = tail[len(tail)-c.half:]
	}
	kept := int64(len(c.head) + len(tail))
	if kept == c.total {
		return strings.ToValidUTF8(string(c.head)+string(tail), "\uFFFD"), false
	}
	return strings.ToValidUTF8(string(c.head), "\uFFFD") +
		fmt.Sprintf("\n[... %d bytes truncated ...]\n", c.total-kept) +
		strings.ToValidUTF8(string(tail), "\uFFFD"), true
}
