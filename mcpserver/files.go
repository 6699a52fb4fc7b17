package mcpserver

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits of list_dir: it reads the tar stream of the directory and stops
// after this many direct entries or this many bytes.
const (
	maxDirEntries = 1000
	maxDirBytes   = 64 << 20
)

type readFileArgs struct {
	Box  string `json:"box" jsonschema:"the box ID or name"`
	Path string `json:"path" jsonschema:"absolute path of a regular file in the box"`
}

type readFileResult struct {
	Path      string `json:"path"`
	Content   string `json:"content"`
	Encoding  string `json:"encoding"` // utf8 or base64
	Size      int64  `json:"size"`     // bytes returned (before base64)
	Truncated bool   `json:"truncated,omitempty"`
}

type writeFileArgs struct {
	Box      string `json:"box" jsonschema:"the box ID or name"`
	Path     string `json:"path" jsonschema:"absolute path of the file to write in the box; parent directories are created, an existing file is replaced"`
	Content  string `json:"content" jsonschema:"the file content"`
	Encoding string `json:"encoding,omitempty" jsonschema:"utf8 (default) or base64 (for binary content)"`
}

type listDirArgs struct {
	Box  string `json:"box" jsonschema:"the box ID or name"`
	Path string `json:"path" jsonschema:"absolute path of a directory in the box"`
}

// dirEntry is one entry of list_dir.
type dirEntry struct {
	Name string `json:"name"`
	Type string `json:"type"` // file, dir, symlink, link
	Size int64  `json:"size"`
	Mode string `json:"mode"`
	Link string `json:"link,omitempty"`
}

func (s *session) addFileTools(srv *mcp.Server) {
	addTool(s, srv, &mcp.Tool{
		Name:  "read_file",
		Title: "Read a file from a box",
		Description: "Read a regular file in a running box. Text comes back as is (encoding utf8), other " +
			"content base64-encoded (encoding base64). Files longer than the server's limit are cut (truncated true).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, nil, s.readFile)
	addTool(s, srv, &mcp.Tool{
		Name:        "write_file",
		Title:       "Write a file in a box",
		Description: "Create or replace a file in a running box, creating parent directories.",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true},
	}, func(sc *jsonschema.Schema) { setEnum(sc, "encoding", "utf8", "base64") }, s.writeFile)
	addTool(s, srv, &mcp.Tool{
		Name:  "list_dir",
		Title: "List a directory in a box",
		Description: "List the entries of a directory in a running box (name, type, size, mode), " +
			"at most 1000 (truncated true when there are more or the tree is very large).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, nil, s.listDir)
}

// download reads the file p of box into memory, at most limit bytes; more
// sets truncated (and stops the transfer).
func (s *session) download(ctx context.Context, box, p string, limit int64) (data []byte, truncated bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &limitBuffer{limit: limit, over: cancel}
	err = s.srv.svc.DownloadFile(ctx, box, p, w)
	if w.exceeded {
		return w.buf.Bytes(), true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return w.buf.Bytes(), false, nil
}

// limitBuffer keeps the first limit bytes written and calls over (once)
// when more arrive.
type limitBuffer struct {
	buf      bytes.Buffer
	limit    int64
	exceeded bool
	over     func()
}

func (l *limitBuffer) Write(b []byte) (int, error) {
	if l.exceeded {
		return 0, errTooLarge
	}
	if room := l.limit - int64(l.buf.Len()); int64(len(b)) > room {
		l.buf.Write(b[:room])
		l.exceeded = true
		l.over()
		return int(room), errTooLarge
	}
	return l.buf.Write(b)
}

var errTooLarge = errors.New("mcpserver: file exceeds the size limit")

func (s *session) readFile(ctx context.Context, _ *mcp.CallToolRequest, in readFileArgs) (any, error) {
	p, err := checkBoxPath("path", in.Path)
	if err != nil {
		return nil, err
	}
	b, err := s.resolve(ctx, in.Box)
	if err != nil {
		return nil, err
	}
	data, truncated, err := s.download(ctx, b.ID, p, s.srv.cfg.MaxFileBytes)
	if err != nil {
		return nil, err
	}
	res := readFileResult{Path: p, Size: int64(len(data)), Truncated: truncated, Encoding: "utf8", Content: string(data)}
	if !utf8.Valid(data) {
		res.Encoding, res.Content = "base64", base64.StdEncoding.EncodeToString(data)
	}
	return res, nil
}

func (s *session) writeFile(ctx context.Context, _ *mcp.CallToolRequest, in writeFileArgs) (any, error) {
	p, err := checkBoxPath("path", in.Path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(p, "/") || path.Clean(p) == "/" {
		return nil, invalidf("path must name a file, got %q", in.Path)
	}
	data := []byte(in.Content)
	switch in.Encoding {
	case "", "utf8":
	case "base64":
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return nil, invalidf("content is not valid base64: %v", err)
		}
	default:
		return nil, invalidf("encoding must be utf8 or base64, got %q", in.Encoding)
	}
	if int64(len(data)) > s.srv.cfg.MaxFileBytes {
		return nil, invalidf("content is %d bytes; this server accepts at most %d", len(data), s.srv.cfg.MaxFileBytes)
	}
	b, err := s.resolve(ctx, in.Box)
	if err != nil {
		return nil, err
	}
	if err := s.srv.svc.UploadFile(ctx, b.ID, path.Clean(p), bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return map[string]any{"path": path.Clean(p), "bytes": len(data)}, nil
}

func (s *session) listDir(ctx context.Context, _ *mcp.CallToolRequest, in listDirArgs) (any, error) {
	p, err := checkBoxPath("path", in.Path)
	if err != nil {
		return nil, err
	}
	b, err := s.resolve(ctx, in.Box)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	copyErr := make(chan error, 1)
	go func() {
		err := s.srv.svc.CopyOut(ctx, b.ID, path.Clean(p), pw)
		pw.CloseWithError(err)
		copyErr <- err
	}()
	entries, truncated, isDir, err := readDirTar(&countingReader{r: pr, max: maxDirBytes})
	if truncated || err != nil || !isDir {
		cancel() // stop the transfer: enough read, or nothing more wanted
	}
	pr.CloseWithError(io.ErrClosedPipe) // unblock a writer with unread data
	cerr := <-copyErr
	switch {
	case truncated:
		// The copy was cut short on purpose; its error is expected.
	case cerr != nil && isDir && err == nil:
		return nil, cerr // the Service's error carries the API code
	case err != nil && cerr != nil:
		return nil, cerr
	case err != nil:
		return nil, fmt.Errorf("read directory listing: %w", err)
	}
	if !isDir {
		return nil, invalidf("%s is not a directory", p)
	}
	return map[string]any{"path": path.Clean(p), "entries": entries, "truncated": truncated}, nil
}

// countingReader fails with errTooLarge after max bytes.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	if c.n >= c.max {
		return 0, errTooLarge
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// readDirTar reads a tar stream of a directory (entry names start with the
// directory's base name) and returns its direct children. It stops early
// (truncated) after maxDirEntries children or on errTooLarge.
func readDirTar(r io.Reader) (entries []dirEntry, truncated, isDir bool, err error) {
	tr := tar.NewReader(r)
	entries = []dirEntry{}
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, false, isDir, nil
		}
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return entries, true, isDir, nil
			}
			return entries, false, isDir, err
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if first {
			isDir = hdr.Typeflag == tar.TypeDir
			if !isDir {
				return nil, false, false, nil
			}
			continue
		}
		_, rest, ok := strings.Cut(name, "/")
		if !ok || rest == "" || strings.Contains(rest, "/") {
			continue // deeper entries
		}
		if len(entries) == maxDirEntries {
			return entries, true, true, nil
		}
		e := dirEntry{Name: rest, Size: hdr.Size, Mode: hdr.FileInfo().Mode().String()}
		switch hdr.Typeflag {
		case tar.TypeDir:
			e.Type = "dir"
		case tar.TypeSymlink:
			e.Type, e.Link = "symlink", hdr.Linkname
		case tar.TypeLink:
			e.Type, e.Link = "link", hdr.Linkname
		default:
			e.Type = "file"
		}
		entries = append(entries, e)
	}
}

// addResources registers the box-file resource template.
func (s *session) addResources(srv *mcp.Server) {
	srv.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "box-file",
		Title:       "A file in a box",
		Description: "A regular file inside a running box: boxrun://BOX/absolute/path (BOX is an ID or name).",
		URITemplate: "boxrun://{box}/{+path}",
	}, s.readResource)
}

// parseBoxURI splits boxrun://BOX/path into the box and the absolute path.
func parseBoxURI(uri string) (box, p string, err error) {
	rest, ok := strings.CutPrefix(uri, "boxrun://")
	if !ok {
		return "", "", invalidf("not a boxrun:// URI: %q", uri)
	}
	box, p, _ = strings.Cut(rest, "/")
	if box, err = url.PathUnescape(box); err != nil {
		return "", "", invalidf("bad box in %q", uri)
	}
	if p, err = url.PathUnescape(p); err != nil {
		return "", "", invalidf("bad path in %q", uri)
	}
	if err := checkBoxArg(box); err != nil {
		return "", "", err
	}
	p, err = checkBoxPath("path", "/"+p)
	return box, p, err
}

func (s *session) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	box, p, err := parseBoxURI(uri)
	if err != nil {
		return nil, err
	}
	b, err := s.resolve(ctx, box)
	if err != nil {
		if errors.Is(err, boxapi.ErrNotFound) {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, err
	}
	data, truncated, err := s.download(ctx, b.ID, p, s.srv.cfg.MaxFileBytes)
	if errors.Is(err, boxapi.ErrNotFound) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if err != nil {
		return nil, err
	}
	if truncated {
		return nil, invalidf("%s is larger than this server's limit of %d bytes", uri, s.srv.cfg.MaxFileBytes)
	}
	rc := &mcp.ResourceContents{URI: uri}
	if utf8.Valid(data) {
		rc.MIMEType, rc.Text = "text/plain; charset=utf-8", string(data)
	} else {
		rc.MIMEType, rc.Blob = "application/octet-stream", data
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{rc}}, nil
}
