package client

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"sync"
)

// CopyIn implements boxrun.Service with the archive extension: PUT
// /v1/boxes/{box}/archive?path=dst with the tar stream as the body,
// streamed as it is read.
func (c *Client) CopyIn(ctx context.Context, box, dst string, tar io.Reader) error {
	src := &sourceReader{r: tar}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut,
		c.endpoint(boxPath(box)+"/archive", url.Values{"path": {dst}}), io.NopCloser(src))
	if err != nil {
		return fmt.Errorf("client: copy in: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.send(req)
	if err != nil {
		return src.blame(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// CopyOut implements boxrun.Service with the archive extension: GET
// /v1/boxes/{box}/archive?path=src, streaming the tar into w.
func (c *Client) CopyOut(ctx context.Context, box, src string, w io.Writer) error {
	req, err := c.newRequest(ctx, http.MethodGet, boxPath(box)+"/archive", url.Values{"path": {src}}, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-tar")
	return c.stream(req, w)
}

// UploadFile implements boxrun.Service: POST /v1/boxes/{box}/files/upload
// as multipart/form-data (a dest field, then the file part), streamed from
// r through a pipe so that large files are never held in memory.
func (c *Client) UploadFile(ctx context.Context, box, dest string, r io.Reader) error {
	src := &sourceReader{r: r}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := mw.WriteField("dest", dest)
		if err == nil {
			var fw io.Writer
			if fw, err = mw.CreateFormFile("file", path.Base(dest)); err == nil {
				if _, err = io.Copy(fw, src); err == nil {
					err = mw.Close()
				}
			}
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(boxPath(box)+"/files/upload", nil), pr)
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("client: upload: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.send(req)
	// Unblock the writer goroutine whatever happened (a no-op after EOF).
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return src.blame(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// DownloadFile implements boxrun.Service: POST
// /v1/boxes/{box}/files/download, streaming the bytes into w.
func (c *Client) DownloadFile(ctx context.Context, box, p string, w io.Writer) error {
	req, err := c.newRequest(ctx, http.MethodPost, boxPath(box)+"/files/download", nil, map[string]string{"path": p})
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/octet-stream")
	return c.stream(req, w)
}

// stream sends req and copies a successful response body into w.
func (c *Client) stream(req *http.Request, w io.Writer) error {
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, req.Method, req.URL.Path, err)
	}
	return nil
}

// sourceReader remembers the first error of the caller's reader, so that a
// failing source is reported as such rather than as a transport failure.
type sourceReader struct {
	r io.Reader

	mu  sync.Mutex // the transport may still be reading when the request fails
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	return n, err
}

// blame returns the source's error when it caused the request to fail.
func (s *sourceReader) blame(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return fmt.Errorf("client: read source: %w", s.err)
	}
	return err
}
