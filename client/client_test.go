package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/httpapi"
)

// serve runs httpapi over svc on ln until the test ends.
func serve(t testing.TB, h *httpapi.Server, ln net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("httpapi.Serve did not return")
		}
	})
}

// newRemote returns a client talking over loopback TCP to a real httpapi
// server wrapping a fake-driver Manager, and that Manager.
func newRemote(t testing.TB) (*client.Client, *boxrun.Manager) {
	t.Helper()
	m := boxruntest.NewManager(t)
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, httpapi.New(m), ln)
	c, err := client.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, m
}

// newHandlerClient serves h (wrapping httpapi over a fake Manager) with
// httptest and returns a client for it.
func newHandlerClient(t testing.TB, wrap func(http.Handler) http.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	m := boxruntest.NewManager(t)
	srv := httptest.NewServer(wrap(httpapi.New(m)))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		url, want string
		wantErr   bool
	}{
		{"http://127.0.0.1:9090", "http://127.0.0.1:9090", false},
		{"http://127.0.0.1:9090/", "http://127.0.0.1:9090", false},
		{"http://h:1/prefix", "http://h:1/prefix", false},
		{"unix:///tmp/x.sock", "http://localhost", false},
		{"http+unix:///tmp/x.sock", "http://localhost", false},
		{"unix://", "", true},
		{"ftp://x", "", true},
		{"127.0.0.1:9090", "", true},
	} {
		c, err := client.New(tc.url)
		if gotErr := err != nil; gotErr != tc.wantErr {
			t.Errorf("New(%q) err = %v, want error %v", tc.url, err, tc.wantErr)
			continue
		}
		if err == nil && c.URL() != tc.want {
			t.Errorf("New(%q).URL() = %q, want %q", tc.url, c.URL(), tc.want)
		}
	}
}

func TestClient_UnixSocket(t *testing.T) {
	m := boxruntest.NewManager(t)
	sock := filepath.Join(t.TempDir(), "boxrun.sock")
	ln, err := httpapi.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, httpapi.New(m), ln)
	for _, u := range []string{"unix://" + sock, "http+unix://" + sock} {
		c, err := client.New(u)
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxT(t)
		box, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
		if err != nil {
			t.Fatalf("%s: create: %v", u, err)
		}
		var out strings.Builder
		e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "over the socket"}}, &out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := out.String(), "over the socket\n"; got != want || *e.ExitCode != 0 {
			t.Errorf("%s: exec output %q (exit %v), want %q", u, got, e.ExitCode, want)
		}
		code, err := c.Attach(ctx, box.ID, boxapi.AttachRequest{Cmd: []string{"sh", "-c", "exit 4"}})
		if err != nil || code != 4 {
			t.Errorf("%s: attach = %d, %v; want 4", u, code, err)
		}
	}
}

func TestClient_Unavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctxT(t)); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Info on a closed port: err = %v, want ErrUnavailable", err)
	}
	c, _ = client.New("unix://" + filepath.Join(t.TempDir(), "missing.sock"))
	if _, err := c.List(ctxT(t), boxapi.BoxFilter{}); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("List on a missing socket: err = %v, want ErrUnavailable", err)
	}
}

func TestClient_NonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Failed to deserialize the JSON body", http.StatusUnprocessableEntity)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL)
	_, err := c.Get(ctxT(t), "x")
	var be *boxapi.Error
	if !errors.As(err, &be) {
		t.Fatalf("err = %T %v, want *boxapi.Error", err, err)
	}
	if be.Code != boxapi.CodeRuntimeError || be.Message != "Failed to deserialize the JSON body" {
		t.Errorf("err = [%s] %q, want RUNTIME_ERROR with the raw text", be.Code, be.Message)
	}
	if !errors.Is(err, boxapi.ErrRuntime) {
		t.Errorf("errors.Is(err, ErrRuntime) = false")
	}
}

func TestClient_Token(t *testing.T) {
	const token = "s3cret"
	check := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"code":"UNAUTHORIZED","message":"Missing or invalid bearer token"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	ctx := ctxT(t)
	c := newHandlerClient(t, check, client.WithToken(token))
	box, err := c.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatalf("create with token: %v", err)
	}
	if _, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"true"}}, nil, nil); err != nil {
		t.Errorf("exec with token (SSE too): %v", err)
	}
	if code, err := c.Attach(ctx, box.ID, boxapi.AttachRequest{Cmd: []string{"true"}}); err != nil || code != 0 {
		t.Errorf("attach with token: %d, %v", code, err)
	}
	noToken := newHandlerClient(t, check)
	_, err = noToken.Info(ctx)
	var be *boxapi.Error
	if !errors.As(err, &be) || be.Code != "UNAUTHORIZED" {
		t.Errorf("without token: err = %v, want UNAUTHORIZED", err)
	}
}
