package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
)

// TestGVisor_ErrorCases checks the error answers that used to look like
// success (issue 12), against real gVisor boxes: each gets its exact code
// and status, and leaves nothing half-done in the box.
func TestGVisor_ErrorCases(t *testing.T) {
	s := newGVisorEnv(t)
	e := &env{t: t, mgr: s.mgr, url: s.url}
	e.createBox(`{"image":"busybox","name":"errs"}`)
	exists := func(p string) bool {
		t.Helper()
		ex := e.startExec("errs", "test", "-e", p)
		return e.waitExec(ex.ID).ExitCode != nil && *e.waitExec(ex.ID).ExitCode == 0
	}
	wantEnvelope := func(name string, r response, status int, code, msg string) {
		t.Helper()
		env := jsonOf[map[string]string](t, r)
		if r.status != status || env["code"] != code || !strings.Contains(env["message"], msg) {
			t.Errorf("%s: %d %s, want %d %s %q", name, r.status, r.body, status, code, msg)
		}
	}

	t.Run("ArchiveOfMissingPath", func(t *testing.T) {
		r := e.do("GET", "/v1/boxes/errs/archive?path=/missing", "")
		wantEnvelope("archive", r, 404, "FILE_NOT_FOUND", "File '/missing' not found in box")
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	})
	t.Run("NULInPaths", func(t *testing.T) {
		r := e.upload("errs", part{name: "dest", value: "/root/nul\x00x"}, part{name: "file", value: "data", file: true})
		wantEnvelope("upload", r, 422, "VALIDATION_ERROR", "NUL")
		r = e.download("errs", "/etc/passwd\x00x")
		wantEnvelope("download", r, 422, "VALIDATION_ERROR", "NUL")
		r = e.do("GET", "/v1/boxes/errs/archive?path=/etc%00x", "")
		wantEnvelope("archive get", r, 400, "VALIDATION_ERROR", "NUL")
		r = e.do("PUT", "/v1/boxes/errs/archive?path=/root/a%00b", "", "Content-Type", "application/x-tar")
		wantEnvelope("archive put", r, 400, "VALIDATION_ERROR", "NUL")
		if exists("/root/nul") {
			t.Error("upload with NUL in dest created /root/nul")
		}
	})
	t.Run("InvalidTarCreatesNothing", func(t *testing.T) {
		r := e.do("PUT", "/v1/boxes/errs/archive?path=/root/newdir", strings.Repeat("not a tar ", 100), "Content-Type", "application/x-tar")
		if r.status < 400 {
			t.Errorf("invalid tar: %d %s", r.status, r.body)
		}
		if exists("/root/newdir") {
			t.Error("a failed archive PUT created its target directory")
		}
	})
	t.Run("MalformedEscape", func(t *testing.T) {
		for _, target := range []string{"/v1/boxes/%ZZ", "/v1/boxes/errs/archive%G1?path=/x"} {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			c.Close()
			wantEnvelope(target, response{res.StatusCode, res.Header, body}, 400, "VALIDATION_ERROR", "Bad Request")
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", target, ct)
			}
		}
	})
	t.Run("RunTimeout", func(t *testing.T) {
		r := e.do("POST", "/v1/run", `{"image":"busybox","cmd":["sleep","30"],"timeout_ms":1000}`)
		res := jsonOf[map[string]any](t, r)
		msg, _ := res["error_message"].(string)
		if r.status != 200 || !strings.Contains(msg, "timed out") {
			t.Errorf("run with timeout: %d %s", r.status, r.body)
		}
	})
	t.Run("RunClientGone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(1500*time.Millisecond, cancel)
		_, err := s.mgr.Run(ctx, boxrun.RunRequest{Image: "busybox", Cmd: []string{"sleep", "30"}})
		if !errors.Is(err, context.Canceled) || boxrun.ErrorCode(err) != boxrun.CodeCanceled || strings.Contains(err.Error(), "sqlite") {
			t.Errorf("run canceled by its caller: %v (code %s), want CANCELED", err, boxrun.ErrorCode(err))
		}
		boxes, err := s.mgr.List(context.Background(), boxrun.BoxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			if b.Name != "errs" {
				t.Errorf("run left box %s (%s) behind", b.ID, b.Status)
			}
		}
	})
}
