package httpapi_test

import (
	"net/url"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
)

// TestGVisor_ListFiles lists directories of a real gVisor box through GET
// /v1/boxes/{id}/files: entries with their types, sizes and modes, a
// symlink out of the box's tree reported (not followed), the workdir by
// default, a directory with more entries than MaxListEntries truncated,
// and the errors: a missing directory, a file, a NUL byte, a stopped box.
func TestGVisor_ListFiles(t *testing.T) {
	s := newGVisorEnv(t)
	e := &env{t: t, mgr: s.mgr, url: s.url}
	box := e.createBox(`{"image":"busybox","name":"ls","workdir":"/root"}`)
	ex := e.startExec(box.ID, "sh", "-c", `mkdir -p /root/d/sub && printf hello > /root/d/f.txt && chmod 640 /root/d/f.txt &&
		ln -s /etc/passwd /root/d/link && mkdir /root/many && cd /root/many && seq 1 5003 | xargs touch && echo ok > /root/top`)
	if got := e.waitExec(ex.ID); got.ExitCode == nil || *got.ExitCode != 0 {
		t.Fatalf("setup: %+v", got)
	}
	ls := func(path string) (response, boxapi.FileList) {
		r := e.do("GET", "/v1/boxes/"+box.ID+"/files?path="+url.QueryEscape(path), "")
		var l boxapi.FileList
		if r.status == 200 {
			l = jsonOf[boxapi.FileList](t, r)
		}
		return r, l
	}
	r, l := ls("/root/d")
	if r.status != 200 || l.Path != "/root/d" || l.Truncated || len(l.Entries) != 3 {
		t.Fatalf("list /root/d: %d %s", r.status, r.body)
	}
	want := []boxapi.FileEntry{{Name: "f.txt", Type: "file", Size: 5, Mode: "0640"}, {Name: "link", Type: "symlink", Link: "/etc/passwd"}, {Name: "sub", Type: "dir"}}
	for i, w := range want {
		g := l.Entries[i]
		if g.Name != w.Name || g.Type != w.Type || g.Link != w.Link || (w.Size != 0 && g.Size != w.Size) || (w.Mode != "" && g.Mode != w.Mode) || g.ModTime.IsZero() {
			t.Errorf("entry %d: %+v, want %+v", i, g, w)
		}
	}
	if r, l := ls(""); r.status != 200 || l.Path != "/root" || len(l.Entries) != 3 {
		t.Errorf("list of the workdir: %d %s", r.status, r.body)
	}
	if r, l := ls("/root/many"); r.status != 200 || !l.Truncated || len(l.Entries) != boxapi.MaxListEntries {
		t.Errorf("list of 5003 files: %d, %d entries, truncated %v", r.status, len(l.Entries), l.Truncated)
	}
	for path, want := range map[string][2]any{
		"/root/nope":    {404, "FILE_NOT_FOUND"},
		"/root/d/f.txt": {422, "VALIDATION_ERROR"},
		"/root/\x00":    {422, "VALIDATION_ERROR"},
	} {
		r, _ := ls(path)
		if r.status != want[0] || jsonOf[map[string]any](t, r)["code"] != want[1] {
			t.Errorf("list %q: %d %s, want %v", path, r.status, r.body, want)
		}
	}
	if r := e.do("POST", "/v1/boxes/"+box.ID+":stop", ""); r.status != 200 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	if r, _ := ls("/root"); jsonOf[map[string]any](t, r)["code"] != "BOX_NOT_RUNNING" {
		t.Errorf("list in a stopped box: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/boxes/box_nope/files?path=/", ""); r.status != 404 {
		t.Errorf("unknown box: %d %s", r.status, r.body)
	}
}
