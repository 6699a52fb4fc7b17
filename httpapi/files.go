package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/boxrun/boxrun/boxapi"
)

// errTooLarge marks an upload over the limit.
var errTooLarge = errors.New("upload too large")

// limitedReader fails with errTooLarge past n bytes, and remembers it.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: exactly n bytes is fine.
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			l.exceeded = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

func (s *Server) tooLarge() error {
	return &httpError{http.StatusRequestEntityTooLarge, boxapi.CodeValidationError,
		fmt.Sprintf("Upload larger than the limit of %d bytes", s.uploadLimit)}
}

// handleUpload serves POST .../files/upload (spec §5.13, §8.1): multipart
// parts "file" and "dest" ("path" is accepted when "dest" is absent). The
// file streams into Service.UploadFile without being held in memory: when
// the destination part comes first (as the Python SDKs send it) the file is
// piped straight through; otherwise it is spooled to a private temp file.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, p params) error {
	liftDeadlines(w)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return &httpError{http.StatusUnsupportedMediaType, boxapi.CodeValidationError,
			"Expected request with `Content-Type: multipart/form-data`"}
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return badRequest("Invalid multipart body: " + err.Error())
	}
	var dest, fallback string
	var haveDest, haveFallback, haveFile, uploaded bool
	var spool *os.File
	defer func() {
		if spool != nil {
			spool.Close()
			os.Remove(spool.Name())
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return badRequest("Invalid multipart body: " + err.Error())
		}
		switch part.FormName() {
		case "dest", "path":
			v, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return badRequest("Invalid multipart body: " + err.Error())
			}
			if part.FormName() == "dest" {
				dest, haveDest = string(v), true
			} else {
				fallback, haveFallback = string(v), true
			}
		case "file":
			if haveFile {
				break // later file parts are ignored
			}
			haveFile = true
			lr := &limitedReader{r: part, n: s.uploadLimit}
			if haveDest || haveFallback {
				to := dest
				if !haveDest {
					to = fallback
				}
				err := s.svc.UploadFile(r.Context(), p.box, to, lr)
				if lr.exceeded {
					return s.tooLarge()
				}
				if err != nil {
					return err
				}
				dest, haveDest, uploaded = to, true, true
				break
			}
			if spool, err = os.CreateTemp("", "boxrun-upload-*"); err != nil {
				return fmt.Errorf("spool upload: %w", err)
			}
			if _, err := io.Copy(spool, lr); err != nil {
				if lr.exceeded {
					return s.tooLarge()
				}
				return badRequest("Invalid multipart body: " + err.Error())
			}
		}
		part.Close()
	}
	if !haveFile {
		return badRequest("Missing file field")
	}
	if !haveDest && haveFallback {
		dest, haveDest = fallback, true
	}
	if !haveDest {
		return badRequest("Missing dest field")
	}
	if !uploaded {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("spool upload: %w", err)
		}
		if err := s.svc.UploadFile(r.Context(), p.box, dest, spool); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, struct {
		OK   bool   `json:"ok"`
		Dest string `json:"dest"`
	}{true, dest})
	return nil
}

// lazyWriter sets the success headers on the first byte, so an error before
// any output can still be sent as a JSON envelope.
type lazyWriter struct {
	w       http.ResponseWriter
	headers func(http.Header)
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil // an empty write must not commit the 200 (a later error still gets its envelope)
	}
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}

func (l *lazyWriter) start() {
	l.started = true
	l.headers(l.w.Header())
	l.w.WriteHeader(http.StatusOK)
}

// finish ends a stream: err before the first byte becomes the envelope
// (returned); after it, the connection is cut so the client sees a
// truncated body rather than a short success.
func (l *lazyWriter) finish(err error) error {
	switch {
	case err == nil && !l.started:
		l.start()
	case err != nil && l.started:
		panic(http.ErrAbortHandler)
	case err != nil:
		return err
	}
	return nil
}

// quote makes a quoted-string (RFC 9110 §5.6.4); control characters, which
// cannot appear in a header, become '_'.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// downloadRequest is the body of POST .../files/download.
type downloadRequest struct {
	Path *string `json:"path"`
}

// handleDownload streams a file out of a box (spec §5.14, §8.2).
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request, p params) error {
	var req downloadRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Path == nil {
		return missing("path")
	}
	liftDeadlines(w)
	name := path.Base(*req.Path)
	lw := &lazyWriter{w: w, headers: func(h http.Header) {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", "attachment; filename="+quote(name))
	}}
	return lw.finish(s.svc.DownloadFile(r.Context(), p.box, *req.Path, lw))
}

// archivePath reads the required ?path= of the archive extension.
func archivePath(r *http.Request) (string, error) {
	v := r.URL.Query().Get("path")
	if v == "" {
		return "", badRequest("Missing path parameter")
	}
	if strings.ContainsRune(v, 0) {
		return "", badRequest("path must not contain NUL bytes")
	}
	return v, nil
}

// handleArchivePut extracts a tar body into ?path= (extension).
func (s *Server) handleArchivePut(w http.ResponseWriter, r *http.Request, p params) error {
	dst, err := archivePath(r)
	if err != nil {
		return err
	}
	liftDeadlines(w)
	if err := s.svc.CopyIn(r.Context(), p.box, dst, r.Body); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{true})
	return nil
}

// handleArchiveGet streams a tar of ?path= (extension).
func (s *Server) handleArchiveGet(w http.ResponseWriter, r *http.Request, p params) error {
	src, err := archivePath(r)
	if err != nil {
		return err
	}
	liftDeadlines(w)
	lw := &lazyWriter{w: w, headers: func(h http.Header) { h.Set("Content-Type", "application/x-tar") }}
	return lw.finish(s.svc.CopyOut(r.Context(), p.box, src, lw))
}
