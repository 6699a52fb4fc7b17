package mcpserver

import (
	"context"
	"errors"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Snapshot tools (issue 14): checkpoint, restore and fork, registered when
// the Service is a boxapi.Snapshotter. A session uses only the snapshots
// it made (unless Config.AllBoxes): a snapshot holds a box's memory, so
// another session's must stay out of reach. They are removed when the
// session ends, unless Config.KeepBoxes.

// snapshotView is a snapshot as the tools report it.
type snapshotView struct {
	ID          string `json:"id"`
	SourceBoxID string `json:"source_box_id"`
	Image       string `json:"image"`
	CPU         int64  `json:"cpu"`
	MemoryMB    int64  `json:"memory_mb"`
	SizeBytes   int64  `json:"size_bytes"`
	CreatedAt   string `json:"created_at"`
}

type checkpointArgs struct {
	Box          string `json:"box" jsonschema:"the box ID or name (a running box without running commands)"`
	LeaveRunning bool   `json:"leave_running,omitempty" jsonschema:"keep the box running after the checkpoint (default false: it is stopped, its files kept)"`
}

type restoreArgs struct {
	Snapshot string `json:"snapshot" jsonschema:"the snapshot ID returned by checkpoint"`
	Name     string `json:"name,omitempty" jsonschema:"optional unique name for the new box"`
	Keep     bool   `json:"keep,omitempty" jsonschema:"keep the new box when this MCP session ends (default false: it is removed)"`
}

type forkArgs struct {
	Box   string `json:"box" jsonschema:"the box ID or name (a running box without running commands); it keeps running"`
	Count int    `json:"count" jsonschema:"how many copies to make (1 to 16)"`
	Keep  bool   `json:"keep,omitempty" jsonschema:"keep the new boxes when this MCP session ends (default false: they are removed)"`
}

func (s *session) addSnapshotTools(srv *mcp.Server) {
	sn, ok := s.srv.svc.(boxapi.Snapshotter)
	if !ok {
		return
	}
	addTool(s, srv, &mcp.Tool{
		Name:  "checkpoint",
		Title: "Save a box with its memory",
		Description: "Save a running box, the memory of its processes and its files, as a snapshot. " +
			"restore makes new boxes from it whose processes continue where they were. " +
			"Commands must not be running in the box. The box is stopped unless leave_running is true.",
	}, nil, func(ctx context.Context, _ *mcp.CallToolRequest, in checkpointArgs) (any, error) {
		b, err := s.resolve(ctx, in.Box)
		if err != nil {
			return nil, err
		}
		snap, err := sn.Checkpoint(ctx, b.ID, boxapi.CheckpointOptions{LeaveRunning: in.LeaveRunning})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		closed := s.closed
		if !closed {
			if s.snaps == nil {
				s.snaps = map[string]bool{}
			}
			s.snaps[snap.ID] = true
		}
		s.mu.Unlock()
		if closed {
			s.removeSnapshot(snap.ID)
			return nil, errSessionClosed
		}
		return snapView(snap), nil
	})

	addTool(s, srv, &mcp.Tool{
		Name:  "restore",
		Title: "Restore a box from a snapshot",
		Description: "Make a new running box from a snapshot made by checkpoint: its processes continue from the " +
			"saved memory and its files are a private copy. The box is removed when this session ends unless keep is true.",
	}, func(sc *jsonschema.Schema) {
		sc.Properties["snapshot"].MinLength = ptr(1)
	}, func(ctx context.Context, req *mcp.CallToolRequest, in restoreArgs) (any, error) {
		if in.Snapshot == "" {
			return nil, invalidf("snapshot is required (an ID returned by checkpoint)")
		}
		if !s.ownsSnapshot(in.Snapshot) {
			return nil, boxapi.Errorf(boxapi.CodeSnapshotNotFound, "Snapshot '%s' not found", in.Snapshot)
		}
		if in.Keep && s.srv.cfg.MaxLifetime > 0 {
			return nil, invalidf("keep is not allowed: this server limits box lifetime to %v", s.srv.cfg.MaxLifetime)
		}
		if err := s.reserve(); err != nil {
			return nil, err
		}
		s.watch(req.Session)
		b, err := sn.Restore(ctx, in.Snapshot, boxapi.RestoreSpec{Name: in.Name})
		if err != nil {
			s.release()
			return nil, err
		}
		if err := s.adopt(b.ID, in.Keep); err != nil {
			return nil, err
		}
		return s.view(b), nil
	})

	addTool(s, srv, &mcp.Tool{
		Name:  "fork",
		Title: "Fork a running box",
		Description: "Make count new running boxes with the current memory and files of a running box, which keeps " +
			"running. Each copy has its own files. They are removed when this session ends unless keep is true.",
	}, func(sc *jsonschema.Schema) {
		setMin(sc, "count", 1)
		setMax(sc, "count", boxapi.MaxFork)
	}, func(ctx context.Context, req *mcp.CallToolRequest, in forkArgs) (any, error) {
		if in.Count < 1 || in.Count > boxapi.MaxFork {
			return nil, invalidf("count must be between 1 and %d", boxapi.MaxFork)
		}
		if in.Keep && s.srv.cfg.MaxLifetime > 0 {
			return nil, invalidf("keep is not allowed: this server limits box lifetime to %v", s.srv.cfg.MaxLifetime)
		}
		b, err := s.resolve(ctx, in.Box)
		if err != nil {
			return nil, err
		}
		reserved := 0
		defer func() {
			for ; reserved > 0; reserved-- {
				s.release()
			}
		}()
		for range in.Count {
			if err := s.reserve(); err != nil {
				return nil, err
			}
			reserved++
		}
		s.watch(req.Session)
		forks, err := sn.Fork(ctx, b.ID, in.Count)
		if err != nil {
			return nil, err
		}
		out := make([]boxView, 0, len(forks))
		var adoptErr error
		for _, f := range forks {
			reserved--
			if err := s.adopt(f.ID, in.Keep); err != nil {
				adoptErr = err
				continue
			}
			out = append(out, s.view(f))
		}
		if adoptErr != nil {
			return nil, adoptErr
		}
		return map[string]any{"boxes": out}, nil
	})
}

func snapView(s *boxapi.Snapshot) snapshotView {
	return snapshotView{ID: s.ID, SourceBoxID: s.SourceBoxID, Image: s.Image, CPU: s.CPU, MemoryMB: s.MemoryMB,
		SizeBytes: s.SizeBytes, CreatedAt: s.CreatedAt.UTC().Format(time.RFC3339)}
}

// ownsSnapshot reports whether this session may use snapshot id.
func (s *session) ownsSnapshot(id string) bool {
	if s.srv.cfg.AllBoxes {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snaps[id]
}

// removeSnapshots removes the session's snapshots when it ends (unless
// Config.KeepBoxes).
func (s *session) removeSnapshots() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.snaps))
	for id := range s.snaps {
		ids = append(ids, id)
	}
	s.snaps = nil
	s.mu.Unlock()
	if s.srv.cfg.KeepBoxes {
		return
	}
	for _, id := range ids {
		s.removeSnapshot(id)
	}
}

// removeSnapshot removes one snapshot whatever the caller's context.
func (s *session) removeSnapshot(id string) {
	sn, ok := s.srv.svc.(boxapi.Snapshotter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := sn.RemoveSnapshot(ctx, id); err != nil && !errors.Is(err, boxapi.ErrNotFound) {
		s.srv.logf("remove snapshot %s at session end: %v", id, err)
	}
}
