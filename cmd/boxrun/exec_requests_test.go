package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/httpapi"
)

// TestCLI_ExecRequests checks that `boxrun exec` sends only the requests it
// needs: the exec's start and its event stream (the final record comes on
// the exit event), no info, no lookup, no GET after the stream.
func TestCLI_ExecRequests(t *testing.T) {
	m := boxruntest.NewManager(t)
	var mu sync.Mutex
	var reqs []string
	api := httpapi.New(m)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Method+" "+r.URL.Path)
		mu.Unlock()
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b, err := m.Create(context.Background(), boxrun.BoxSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{url: srv.URL, m: m, stateDir: t.TempDir()}
	r := s.run(t, "", "exec", b.ID, "--", "sh", "-c", "echo hi; exit 5")
	if r.code != 5 || r.stdout != "hi\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 || reqs[0] != "POST /v1/boxes/"+b.ID+"/exec" || !strings.HasSuffix(reqs[1], "/events") {
		t.Errorf("requests of `boxrun exec`:\n%s\nwant the start and the event stream only", strings.Join(reqs, "\n"))
	}
}
