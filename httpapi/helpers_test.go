package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

// env is a real HTTP server on loopback over a fake-driver Manager.
type env struct {
	t   testing.TB
	mgr *boxrun.Manager
	url string // base URL of the server
}

// newEnv starts a Server over a fresh Manager; both end with the test.
func newEnv(t testing.TB, opts ...httpapi.Option) *env {
	t.Helper()
	mgr := boxruntest.NewManager(t)
	srv := httptest.NewServer(httpapi.New(mgr, opts...))
	t.Cleanup(srv.Close)
	return &env{t: t, mgr: mgr, url: srv.URL}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; a non-empty body is sent as JSON unless ctype says otherwise.
func (e *env) do(method, path, body string, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{res.StatusCode, res.Header, data}
}

// noRedirect is a client that returns redirects as they are.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// jsonOf decodes a JSON response into v, failing the test on error.
func jsonOf[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

// createBox creates a running box through the API.
func (e *env) createBox(body string) boxapi.Box {
	e.t.Helper()
	r := e.do("POST", "/v1/boxes", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create box: %d %s", r.status, r.body)
	}
	return jsonOf[boxapi.Box](e.t, r)
}

// startExec starts an exec through the API.
func (e *env) startExec(box string, cmd ...string) boxapi.Exec {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"cmd": cmd})
	r := e.do("POST", "/v1/boxes/"+box+"/exec", string(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("start exec: %d %s", r.status, r.body)
	}
	return jsonOf[boxapi.Exec](e.t, r)
}

// waitExec waits for an exec to finish, through the Manager.
func (e *env) waitExec(id string) *boxapi.Exec {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := e.mgr.WaitExec(ctx, id)
	if err != nil {
		e.t.Fatalf("wait exec %s: %v", id, err)
	}
	return ex
}

var (
	reBoxID  = regexp.MustCompile(`box_[A-Za-z0-9_-]{12}`)
	reExecID = regexp.MustCompile(`exec_[A-Za-z0-9_-]{12}`)
	reTime   = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$`)
)

// normalize replaces the values that differ between runs (IDs, times,
// driver handles, host temp paths) with placeholders, keeping every key.
func normalize(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			x[k] = normalize(val, k)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i], key)
		}
		return x
	case string:
		switch {
		case key == "boxlite_id":
			return "<handle>"
		case reTime.MatchString(x):
			return "<time>"
		}
		x = reBoxID.ReplaceAllString(x, "<box_id>")
		x = reExecID.ReplaceAllString(x, "<exec_id>")
		return x
	}
	return v
}

// golden compares a JSON body with testdata/golden/name after normalizing
// it; -update rewrites the file. Key sets must match exactly.
func golden(t testing.TB, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("golden %s: body is not JSON: %q", name, body)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(normalize(v, "")); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden %s mismatch:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// goldenText compares raw bytes with testdata/golden/name; -update rewrites it.
func goldenText(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden %s mismatch:\n--- got\n%s--- want\n%s", name, got, want)
	}
}
