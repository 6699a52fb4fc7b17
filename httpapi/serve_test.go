package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
	"github.com/boxrun/boxrun/internal/testenv"
	"github.com/coder/websocket"
)

// served is a Server running under Serve on a real listener.
type served struct {
	url    string
	client *http.Client
	stop   func() error // cancels Serve and returns its error
	mgr    *boxrun.Manager
}

func serve(t *testing.T, ln net.Listener, opts ...httpapi.Option) *served {
	t.Helper()
	return serveManager(t, boxruntest.NewManager(t), ln, opts...)
}

// serveManager serves mgr on ln until the test ends.
func serveManager(t *testing.T, mgr *boxrun.Manager, ln net.Listener, opts ...httpapi.Option) *served {
	t.Helper()
	srv := httpapi.New(mgr, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	s := &served{client: &http.Client{}, mgr: mgr}
	var once bool
	var serr error
	s.stop = func() error {
		if !once {
			once = true
			cancel()
			select {
			case serr = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatal("Serve did not return")
			}
		}
		return serr
	}
	t.Cleanup(func() { s.stop() })
	if ua, ok := ln.Addr().(*net.UnixAddr); ok {
		s.url = "http://localhost"
		s.client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", ua.Name)
		}}
	} else {
		s.url = "http://" + ln.Addr().String()
	}
	return s
}

func (s *served) get(t *testing.T, path string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServe_UnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "boxrun.sock")
	// A stale socket file (nobody listening) is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := httpapi.Listen("unix", sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	// A live socket is not taken over.
	if _, err := httpapi.Listen("unix", sock); err == nil {
		t.Error("Listen on a live socket succeeded")
	}
	s := serve(t, ln, httpapi.WithToken("secret")) // no token needed over the socket
	if code, body := s.get(t, "/v1/info"); code != 200 || !strings.Contains(body, `"max_cpu":64`) {
		t.Errorf("info over the socket: %d %s", code, body)
	}
	if err := s.stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestListen_RefusesRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	os.WriteFile(path, []byte("x"), 0o644)
	if _, err := httpapi.Listen("unix", path); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if data, _ := os.ReadFile(path); string(data) != "x" {
		t.Error("regular file modified")
	}
}

// nonLoopbackIP returns an IPv4 address of this host that is not loopback.
func nonLoopbackIP(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	testenv.Skip(t, "no non-loopback IPv4 address")
	return ""
}

func TestServe_Token(t *testing.T) {
	ip := nonLoopbackIP(t)
	t.Run("RefusedWithoutToken", func(t *testing.T) {
		ln, err := httpapi.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		err = httpapi.New(boxruntest.NewManager(t)).Serve(context.Background(), ln)
		if err == nil || !strings.Contains(err.Error(), "token") {
			t.Errorf("Serve on %s without a token: %v", ip, err)
		}
	})
	ln, err := httpapi.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, ln, httpapi.WithToken("s3cret"))
	for _, tc := range []struct {
		name string
		path string
		hdr  []string
		want int
	}{
		{"NoToken", "/v1/info", nil, 401},
		{"WrongToken", "/v1/info", []string{"Authorization", "Bearer nope"}, 401},
		{"NotBearer", "/v1/info", []string{"Authorization", "Basic s3cret"}, 401},
		{"Bearer", "/v1/info", []string{"Authorization", "Bearer s3cret"}, 200},
		{"QueryToken", "/v1/info?access_token=s3cret", nil, 200},
		{"UIIsPublic", "/ui", nil, 200},
		{"UnknownRouteStill404", "/nope", nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.get(t, tc.path, tc.hdr...)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, body, tc.want)
			}
			if code == 401 && body != `{"code":"UNAUTHORIZED","message":"Missing or invalid bearer token"}`+"\n" {
				t.Errorf("401 body %q", body)
			}
		})
	}
	t.Run("LoopbackNeedsNoToken", func(t *testing.T) {
		ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := serve(t, ln, httpapi.WithToken("s3cret"))
		if code, body := s.get(t, "/v1/info"); code != 200 {
			t.Errorf("%d %s", code, body)
		}
	})
}

// TestServe_GracefulShutdown: ending Serve's ctx ends live SSE streams and
// terminal sessions and returns nil.
func TestServe_GracefulShutdown(t *testing.T) {
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, ln)
	ctx := context.Background()
	box, err := s.mgr.Create(ctx, boxapi.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := s.mgr.StartExec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.client.Get(s.url + "/v1/boxes/" + box.ID + "/exec/" + ex.ID + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	ended := make(chan error, 3)
	go func() { _, err := io.Copy(io.Discard, bufio.NewReader(res.Body)); ended <- err }()
	go func() {
		res, err := s.client.Get(s.url + "/v1/boxes/_/exec/" + ex.ID + ":wait")
		if err == nil {
			res.Body.Close()
		}
		ended <- err
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	ws, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(s.url, "http")+"/v1/boxes/"+box.ID+"/attach?shell=/bin/sh", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	go func() {
		for {
			if _, _, err := ws.Read(wctx); err != nil {
				ended <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the wait and the shell start

	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	for range 3 {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("an SSE stream, a :wait or a terminal still open after shutdown")
		}
	}
	if _, err := http.Get(s.url + "/v1/info"); err == nil {
		t.Error("server still accepting after shutdown")
	}
}
