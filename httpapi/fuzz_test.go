package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/httpapi"
)

// stubService answers every call without doing anything: a box "b1" and an
// exec "e1" exist, readers handed to it are read to the end (so streaming
// decoders run), everything else is not found. Fuzzing the HTTP layer over
// it runs no command and touches no file.
type stubService struct{}

var _ boxapi.Service = stubService{}

func notFound() error { return boxapi.Errorf(boxapi.CodeBoxNotFound, "Box not found") }

func stubBox(id string) *boxapi.Box {
	return &boxapi.Box{ID: "box_000000000001", Name: id, Status: boxapi.StatusRunning, Image: "busybox", CPU: 1, MemoryMB: 128, CreatedAt: time.Unix(1700000000, 0)}
}

func stubExec() *boxapi.Exec {
	return &boxapi.Exec{ID: "exec_000000000001", BoxID: "box_000000000001", Status: boxapi.ExecSucceeded, Cmd: []string{"true"}, CreatedAt: time.Unix(1700000000, 0)}
}

func drain(r io.Reader) error {
	if r == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

func (stubService) Info(context.Context) (boxapi.Info, error) { return boxapi.Info{MaxCPU: 2}, nil }
func (stubService) Create(_ context.Context, s boxapi.BoxSpec) (*boxapi.Box, error) {
	return stubBox(s.Name), nil
}
func (stubService) Get(_ context.Context, b string) (*boxapi.Box, error) {
	if b == "b1" {
		return stubBox(b), nil
	}
	return nil, notFound()
}
func (stubService) List(context.Context, boxapi.BoxFilter) ([]*boxapi.Box, error) {
	return []*boxapi.Box{stubBox("b1")}, nil
}
func (stubService) Stop(context.Context, string) (*boxapi.Box, error)  { return nil, notFound() }
func (stubService) Start(context.Context, string) (*boxapi.Box, error) { return nil, notFound() }
func (stubService) Remove(context.Context, string, bool) error         { return notFound() }
func (stubService) GC(context.Context, time.Duration) (int, error)     { return 0, nil }
func (stubService) StartExec(context.Context, string, boxapi.ExecRequest) (*boxapi.Exec, error) {
	return stubExec(), nil
}
func (stubService) Exec(_ context.Context, _ string, _ boxapi.ExecRequest, _, _ io.Writer) (*boxapi.Exec, error) {
	return stubExec(), nil
}
func (stubService) GetExec(context.Context, string) (*boxapi.Exec, error) { return stubExec(), nil }
func (stubService) ListExecs(context.Context, string) ([]*boxapi.Exec, error) {
	return []*boxapi.Exec{stubExec()}, nil
}
func (stubService) WaitExec(context.Context, string) (*boxapi.Exec, error) { return stubExec(), nil }
func (stubService) CancelExec(context.Context, string) (*boxapi.Exec, error) {
	return nil, boxapi.Errorf(boxapi.CodeExecAlreadyFinished, "Exec already finished")
}
func (stubService) ExecEvents(_ context.Context, _ string, _ int64, fn func(boxapi.ExecEvent) error) error {
	return fn(boxapi.ExecEvent{Seq: 0, Kind: boxapi.KindLog, Stream: "stdout", Data: "hi\n"})
}
func (stubService) CopyIn(_ context.Context, _, _ string, r io.Reader) error     { return drain(r) }
func (stubService) CopyOut(context.Context, string, string, io.Writer) error     { return notFound() }
func (stubService) UploadFile(_ context.Context, _, _ string, r io.Reader) error { return drain(r) }
func (stubService) DownloadFile(context.Context, string, string, io.Writer) error {
	return notFound()
}
func (stubService) Run(context.Context, boxapi.RunRequest) (*boxapi.RunResult, error) {
	return nil, notFound()
}
func (stubService) Attach(context.Context, string, boxapi.AttachRequest) (int, error) {
	return 0, notFound()
}
func (stubService) Lifetime(context.Context, string) (*boxapi.Lifetime, error) {
	return nil, notFound()
}
func (stubService) Stats(context.Context, string) (*boxapi.Stats, error) { return nil, notFound() }
func (stubService) StatsStream(context.Context, string, boxapi.StatsOptions, func(*boxapi.Stats) error) error {
	return notFound()
}
func (stubService) Subscribe(context.Context, boxapi.EventFilter) (boxapi.Subscription, error) {
	return nil, notFound()
}
func (stubService) PullImage(context.Context, string) (*boxapi.ImageInfo, error) {
	return nil, boxapi.Errorf(boxapi.CodeValidationError, "no registry")
}
func (stubService) Images(context.Context) ([]boxapi.ImageInfo, error) { return nil, nil }
func (stubService) RemoveImage(context.Context, string) error          { return nil }
func (stubService) PruneImages(context.Context) (int, error)           { return 0, nil }
func (stubService) LoadImages(_ context.Context, r io.Reader, _ boxapi.LoadImagesOptions) ([]boxapi.ImageInfo, error) {
	return nil, drain(r)
}
func (stubService) TagImage(context.Context, string, string) (*boxapi.ImageInfo, error) {
	return nil, notFound()
}
func (stubService) Watch(context.Context, string, string, boxapi.WatchOptions, func(boxapi.FileEvent) error) error {
	return notFound()
}
func (stubService) SaveImages(context.Context, io.Writer, []string) error { return notFound() }

var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead}

func multipartBody(field, filename, content string) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("dest", "/root/x")
	fw, _ := mw.CreateFormFile(field, filename)
	io.WriteString(fw, content)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// FuzzServeHTTP sends arbitrary requests (method, path segments, query,
// content type, body: the JSON bodies, multipart uploads, tar archives and
// parameters of every endpoint) to the API over a stub service: the server
// never panics, never answers 500 (the stub fails nothing internally), and
// every error answer it makes as JSON is valid JSON with an error code.
func FuzzServeHTTP(f *testing.F) {
	ct, mp := multipartBody("file", "a.txt", "hello")
	seeds := []struct {
		m       uint8
		path, q string
		ctype   string
		body    string
	}{
		{1, "/v1/boxes", "", "application/json", `{"image":"busybox","name":"a","cpu":1,"memory_mb":128,"env":{"A":"b"},"volumes":[{"host_path":"/tmp","guest_path":"/mnt","read_only":true}]}`},
		{0, "/v1/boxes", "status=running&limit=3", "", ""},
		{0, "/v1/boxes/b1", "", "", ""},
		{3, "/v1/boxes/b1", "force=true", "", ""},
		{1, "/v1/boxes/b1:stop", "", "", ""},
		{1, "/v1/boxes/b1/exec", "", "application/json", `{"cmd":["sh","-c","echo hi"],"env":{"X":"1"},"workdir":"/root","timeout_ms":1000,"tty":false}`},
		{0, "/v1/boxes/b1/exec/exec_000000000001", "", "", ""},
		{0, "/v1/boxes/b1/exec/exec_000000000001/events", "after_seq=3&encoding=base64", "", ""},
		{0, "/v1/boxes/b1/exec/exec_000000000001/events", "record=1&since=2", "", ""},
		{1, "/v1/boxes/b1/exec/exec_000000000001:cancel", "", "", ""},
		{0, "/v1/boxes/b1/execs", "", "", ""},
		{1, "/v1/boxes/b1/files/upload", "", ct, string(mp)},
		{0, "/v1/boxes/b1/files/download", "path=%2Froot%2Fx", "", ""},
		{2, "/v1/boxes/b1/archive", "path=/root", "application/x-tar", "res/\x00\x00"},
		{0, "/v1/boxes/b1/archive", "path=/missing", "", ""},
		{0, "/v1/boxes/b1/stats", "stream=true&interval_ms=10", "", ""},
		{0, "/v1/boxes/b1/lifetime", "", "", ""},
		{0, "/v1/boxes/b1/attach", "cmd=sh&tty=true&cols=80&rows=24", "", ""},
		{1, "/v1/run", "", "application/json", `{"image":"busybox","cmd":["echo","hi"],"timeout_ms":500}`},
		{1, "/v1/gc", "older_than_hours=1", "", ""},
		{0, "/v1/events", "after_seq=10&box_id=b1&types=box.created,exec.finished", "", ""},
		{0, "/v1/images", "", "", ""},
		{1, "/v1/images", "", "application/json", `{"ref":"busybox:latest"}`},
		{3, "/v1/images/busybox%3Alatest", "", "", ""},
		{1, "/v1/images:tag", "", "application/json", `{"source":"a","target":"b"}`},
		{1, "/v1/images:load", "tag=x", "application/x-tar", "\x00"},
		{0, "/v1/images:save", "ref=a&ref=b", "", ""},
		{1, "/v1/boxes/b1/network/egress", "", "application/json", `{"allow":["10.0.0.0/8"]}`},
		{0, "/v1/boxes/%ZZ", "", "", ""},
		{1, "/v1/boxes", "", "application/json", `{"image":"x","cpu":-1,"name":"\u0000"}`},
		{1, "/v1/boxes", "", "text/plain", `{"image":`},
	}
	for _, s := range seeds {
		f.Add(s.m, s.path, s.q, s.ctype, []byte(s.body))
	}
	srv := httpapi.New(stubService{})
	f.Fuzz(func(t *testing.T, m uint8, path, query, ctype string, body []byte) {
		req, err := http.NewRequest(fuzzMethods[int(m)%len(fuzzMethods)], "http://boxrun.test/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// Set the raw path and query as a client could send them.
		req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, "", query
		if p, err := req.URL.Parse(path); err == nil && strings.HasPrefix(path, "/") {
			req.URL.Path, req.URL.RawPath = p.Path, p.RawPath
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s?%s: 500 %s", req.Method, path, query, rec.Body.String())
		}
		if rec.Code >= 400 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			var e struct {
				Code string `json:"code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
				t.Fatalf("%s %s?%s: %d with invalid JSON %q: %v", req.Method, path, query, rec.Code, rec.Body.String(), err)
			}
		}
	})
}
