package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type uploadArgs struct {
	Box      string `json:"box" jsonschema:"the box ID or name"`
	HostPath string `json:"host_path" jsonschema:"regular file on the host, relative to the server's host directory"`
	Path     string `json:"path" jsonschema:"absolute destination file path in the box; parent directories are created"`
}

type downloadArgs struct {
	Box       string `json:"box" jsonschema:"the box ID or name"`
	Path      string `json:"path" jsonschema:"absolute path of a regular file in the box"`
	HostPath  string `json:"host_path" jsonschema:"destination file on the host, relative to the server's host directory; its directory must exist"`
	Overwrite bool   `json:"overwrite,omitempty" jsonschema:"replace an existing host file (default false)"`
}

// addTools registers every tool of the session.
func (s *session) addTools(srv *mcp.Server) {
	s.addBoxTools(srv)
	s.addExecTool(srv)
	s.addFileTools(srv)
	s.addSnapshotTools(srv)
	if s.srv.cfg.HostDir == "" {
		return
	}
	addTool(s, srv, &mcp.Tool{
		Name:  "upload",
		Title: "Copy a host file into a box",
		Description: "Copy a regular file from the host (inside the directory the server allows: " + s.srv.cfg.HostDir +
			") into a running box.",
	}, nil, s.upload)
	addTool(s, srv, &mcp.Tool{
		Name:  "download",
		Title: "Copy a file from a box to the host",
		Description: "Copy a regular file from a running box to the host (inside the directory the server allows: " +
			s.srv.cfg.HostDir + "). The host file gets mode 0644.",
	}, nil, s.downloadTool)
}

// hostName validates a host path argument and returns it relative to the
// host directory. Confinement against symlinks is os.Root's job; this
// refuses what is plainly outside.
func (s *session) hostName(p string) (string, error) {
	if p == "" {
		return "", invalidf("host_path is required")
	}
	if strings.ContainsRune(p, 0) {
		return "", invalidf("Invalid host_path %q", p)
	}
	if filepath.IsAbs(p) {
		rel, err := filepath.Rel(s.srv.cfg.HostDir, p)
		if err != nil {
			return "", invalidf("host_path %q is outside the allowed host directory %s", p, s.srv.cfg.HostDir)
		}
		p = rel
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", invalidf("host_path %q is outside the allowed host directory %s", p, s.srv.cfg.HostDir)
	}
	return clean, nil
}

// hostError maps a host file error to an API error. Every failure to open
// or create the named file (missing, existing, a symlink or ".." leading out
// of the host directory, refused by os.Root) is the caller's bad argument.
func hostError(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalidf("host_path %q does not exist", p)
	case errors.Is(err, fs.ErrExist):
		return invalidf("host_path %q exists (set overwrite to replace it)", p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return invalidf("host_path %q: %v", p, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return invalidf("host_path %q: %v", p, le.Err)
	}
	return fmt.Errorf("host file %s: %w", p, err)
}

// hostTransfer is what upload and download share: a validated host name
// under the host directory (opened as an os.Root, which the caller closes),
// a clean absolute box path and the resolved box.
type hostTransfer struct {
	name    string // relative to the host directory
	boxPath string
	boxID   string
	root    *os.Root
}

// openTransfer validates the arguments of upload and download in the order
// their errors are reported and opens the host directory.
func (s *session) openTransfer(ctx context.Context, box, hostPath, boxPath string) (*hostTransfer, error) {
	name, err := s.hostName(hostPath)
	if err != nil {
		return nil, err
	}
	p, err := checkBoxPath("path", boxPath)
	if err != nil {
		return nil, err
	}
	b, err := s.resolve(ctx, box)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(s.srv.cfg.HostDir)
	if err != nil {
		return nil, fmt.Errorf("open host directory: %w", err)
	}
	return &hostTransfer{name: name, boxPath: path.Clean(p), boxID: b.ID, root: root}, nil
}

func (s *session) upload(ctx context.Context, _ *mcp.CallToolRequest, in uploadArgs) (any, error) {
	t, err := s.openTransfer(ctx, in.Box, in.HostPath, in.Path)
	if err != nil {
		return nil, err
	}
	defer t.root.Close()
	f, err := t.root.Open(t.name)
	if err != nil {
		return nil, hostError(in.HostPath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, hostError(in.HostPath, err)
	}
	if !st.Mode().IsRegular() {
		return nil, invalidf("host_path %q is not a regular file", in.HostPath)
	}
	if err := s.srv.svc.UploadFile(ctx, t.boxID, t.boxPath, f); err != nil {
		return nil, err
	}
	return map[string]any{"path": t.boxPath, "bytes": st.Size()}, nil
}

func (s *session) downloadTool(ctx context.Context, _ *mcp.CallToolRequest, in downloadArgs) (any, error) {
	t, err := s.openTransfer(ctx, in.Box, in.HostPath, in.Path)
	if err != nil {
		return nil, err
	}
	defer t.root.Close()
	root, name := t.root, t.name
	// Write to a temporary name and rename, so a failed copy leaves nothing
	// half-written under the final name. Modes come from here, never from
	// the box: no setuid, no device.
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+".boxrun-tmp")
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, hostError(in.HostPath, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			root.Remove(tmp)
		}
	}()
	if !in.Overwrite {
		if _, err := root.Lstat(name); err == nil {
			return nil, hostError(in.HostPath, fs.ErrExist)
		}
	}
	cw := &countWriter{w: f}
	if err := s.srv.svc.DownloadFile(ctx, t.boxID, t.boxPath, cw); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write host file: %w", err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return nil, hostError(in.HostPath, err)
	}
	committed = true
	return map[string]any{"host_path": filepath.Join(s.srv.cfg.HostDir, name), "bytes": cw.n}, nil
}

// countWriter counts bytes written to w.
type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
