package mcpserver

import (
	"context"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// boxView is a box as the tools report it.
type boxView struct {
	ID           string            `json:"id"`
	Name         string            `json:"name,omitempty"`
	Status       string            `json:"status"`
	Image        string            `json:"image"`
	CPU          int64             `json:"cpu"`
	MemoryMB     int64             `json:"memory_mb"`
	Network      bool              `json:"network"`
	Workdir      string            `json:"workdir"`
	Env          map[string]string `json:"env,omitempty"`
	CreatedAt    string            `json:"created_at"`
	ErrorMessage string            `json:"error_message,omitempty"`
	Owned        bool              `json:"owned"` // created by this session
	Keep         bool              `json:"keep,omitempty"`
}

func (s *session) view(b *boxapi.Box) boxView {
	v := boxView{ID: b.ID, Name: b.Name, Status: string(b.Status), Image: b.Image, CPU: b.CPU,
		MemoryMB: b.MemoryMB, Network: b.Network, Workdir: b.Workdir, Env: b.Env,
		CreatedAt: b.CreatedAt.UTC().Format(time.RFC3339), ErrorMessage: b.ErrorMessage}
	s.mu.Lock()
	if ob, ok := s.boxes[b.ID]; ok {
		v.Owned, v.Keep = true, ob.keep
	}
	s.mu.Unlock()
	return v
}

type createBoxArgs struct {
	Image    string            `json:"image" jsonschema:"OCI image reference to create the box from, e.g. alpine:3.20 or docker.io/library/python:3.12"`
	Name     string            `json:"name,omitempty" jsonschema:"optional unique name for the box; other tools accept it instead of the ID"`
	CPU      int64             `json:"cpu,omitempty" jsonschema:"vCPUs reserved for the box (default 2)"`
	MemoryMB int64             `json:"memory_mb,omitempty" jsonschema:"memory limit in MiB (default 1024)"`
	Network  bool              `json:"network,omitempty" jsonschema:"give the box outbound network access (default false: loopback only)"`
	Env      map[string]string `json:"env,omitempty" jsonschema:"environment variables of every command run in the box"`
	Workdir  string            `json:"workdir,omitempty" jsonschema:"default working directory of commands (absolute; default /root)"`
	Egress   *egressArgs       `json:"egress,omitempty" jsonschema:"egress policy of a box with network: what it may reach (default: the internet, never the host, link-local/cloud metadata or other boxes)"`
	Keep     bool              `json:"keep,omitempty" jsonschema:"keep the box when this MCP session ends (default false: it is removed)"`
}

// egressArgs is the egress policy argument of create_box (boxapi.EgressPolicy).
type egressArgs struct {
	Default string          `json:"default,omitempty" jsonschema:"allow (the default) or deny: the decision when no rule matches"`
	Rules   []egressRuleArg `json:"rules,omitempty" jsonschema:"rules tried in order, first match wins"`
}

type egressRuleArg struct {
	Action string `json:"action" jsonschema:"allow or deny"`
	CIDR   string `json:"cidr,omitempty" jsonschema:"an IPv4 CIDR or address, e.g. 10.0.0.0/8; give cidr or domain"`
	Domain string `json:"domain,omitempty" jsonschema:"a domain with its subdomains, e.g. pypi.org; give cidr or domain"`
}

// policy converts the argument; the Service validates it.
func (e *egressArgs) policy() *boxapi.EgressPolicy {
	if e == nil {
		return nil
	}
	p := &boxapi.EgressPolicy{Default: e.Default, Rules: []boxapi.EgressRule{}}
	for _, r := range e.Rules {
		p.Rules = append(p.Rules, boxapi.EgressRule{Action: r.Action, CIDR: r.CIDR, Domain: r.Domain})
	}
	return p
}

type boxArgs struct {
	Box string `json:"box" jsonschema:"the box ID or name"`
}

type listBoxesArgs struct {
	Status string `json:"status,omitempty" jsonschema:"only boxes in this state: running, stopped, creating or error (default: all)"`
}

func (s *session) addBoxTools(srv *mcp.Server) {
	addTool(s, srv, &mcp.Tool{
		Name:  "create_box",
		Title: "Create a sandbox box",
		Description: "Create an isolated sandbox (a box) from an OCI image and start it. Returns the box; " +
			"use its id (or name) with exec, read_file, write_file and the other tools. " +
			"The box is removed when this session ends unless keep is true.",
	}, func(sc *jsonschema.Schema) {
		sc.Properties["image"].MinLength = ptr(1)
		setMin(sc, "cpu", 0)
		setMin(sc, "memory_mb", 0)
		if eg := objectSchema(sc.Properties["egress"]); eg != nil {
			setEnum(eg, "default", "allow", "deny")
			if rules := eg.Properties["rules"]; rules != nil && rules.Items != nil {
				setEnum(rules.Items, "action", "allow", "deny")
			}
		}
	}, s.createBox)

	addTool(s, srv, &mcp.Tool{
		Name:        "list_boxes",
		Title:       "List boxes",
		Description: "List the boxes this session may use (by default, those it created), newest first.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(sc *jsonschema.Schema) {
		setEnum(sc, "status", "running", "stopped", "creating", "error")
	}, s.listBoxes)

	addTool(s, srv, &mcp.Tool{
		Name:        "stop_box",
		Title:       "Stop a box",
		Description: "Stop a running box. Its files are kept; start_box runs it again.",
	}, nil, func(ctx context.Context, _ *mcp.CallToolRequest, in boxArgs) (any, error) {
		b, err := s.resolve(ctx, in.Box)
		if err != nil {
			return nil, err
		}
		if b, err = s.srv.svc.Stop(ctx, b.ID); err != nil {
			return nil, err
		}
		return s.view(b), nil
	})

	addTool(s, srv, &mcp.Tool{
		Name:        "start_box",
		Title:       "Start a box",
		Description: "Start a stopped box again, with the files it had.",
	}, nil, func(ctx context.Context, _ *mcp.CallToolRequest, in boxArgs) (any, error) {
		b, err := s.resolve(ctx, in.Box)
		if err != nil {
			return nil, err
		}
		if b, err = s.srv.svc.Start(ctx, b.ID); err != nil {
			return nil, err
		}
		return s.view(b), nil
	})

	addTool(s, srv, &mcp.Tool{
		Name:        "remove_box",
		Title:       "Remove a box",
		Description: "Remove a box (running or not) with its files and commands. This cannot be undone.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
	}, nil, func(ctx context.Context, _ *mcp.CallToolRequest, in boxArgs) (any, error) {
		b, err := s.resolve(ctx, in.Box)
		if err != nil {
			return nil, err
		}
		if err := s.srv.svc.Remove(ctx, b.ID, true); err != nil {
			return nil, err
		}
		s.disown(b.ID)
		return map[string]any{"removed": b.ID}, nil
	})
}

func (s *session) createBox(ctx context.Context, req *mcp.CallToolRequest, in createBoxArgs) (any, error) {
	if in.Image == "" {
		return nil, invalidf("image is required")
	}
	if in.Workdir != "" {
		if _, err := checkBoxPath("workdir", in.Workdir); err != nil {
			return nil, err
		}
	}
	if in.Egress != nil && !in.Network {
		return nil, invalidf("egress rules need network: true")
	}
	if in.Keep && s.srv.cfg.MaxLifetime > 0 {
		return nil, invalidf("keep is not allowed: this server limits box lifetime to %v", s.srv.cfg.MaxLifetime)
	}
	if err := s.reserve(); err != nil {
		return nil, err
	}
	s.watch(req.Session)
	b, err := s.srv.svc.Create(ctx, boxapi.BoxSpec{Image: in.Image, Name: in.Name, CPU: in.CPU,
		MemoryMB: in.MemoryMB, Network: in.Network, Env: in.Env, Workdir: in.Workdir, Egress: in.Egress.policy()})
	if err != nil {
		s.release()
		return nil, err
	}
	if err := s.adopt(b.ID, in.Keep); err != nil {
		return nil, err
	}
	return s.view(b), nil
}

func (s *session) listBoxes(ctx context.Context, _ *mcp.CallToolRequest, in listBoxesArgs) (any, error) {
	boxes, err := s.srv.svc.List(ctx, boxapi.BoxFilter{Status: boxapi.BoxStatus(in.Status)})
	if err != nil {
		return nil, err
	}
	owned := s.ownedIDs()
	out := []boxView{}
	for _, b := range boxes {
		if s.srv.cfg.AllBoxes || owned[b.ID] {
			out = append(out, s.view(b))
		}
	}
	return map[string]any{"boxes": out}, nil
}

func ptr[T any](v T) *T { return &v }
