package mcpserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests use the fake driver (host processes) for the protocol-level
// behaviour: argument checks, session ownership and limits, output
// truncation, host-path confinement. gvisor_test.go runs the agent session
// against real gVisor boxes.

func TestTools_ListedWithSchemas(t *testing.T) {
	m := boxruntest.NewManager(t)
	for _, tc := range []struct {
		hostDir string
		want    []string
	}{
		{"", []string{"checkpoint", "create_box", "exec", "fork", "list_boxes", "list_dir", "read_file", "remove_box", "restore", "start_box", "stop_box", "write_file"}},
		{t.TempDir(), []string{"checkpoint", "create_box", "download", "exec", "fork", "list_boxes", "list_dir", "read_file", "remove_box", "restore", "start_box", "stop_box", "upload", "write_file"}},
	} {
		srv := mcpserver.New(m, mcpserver.Config{HostDir: tc.hostDir})
		cs, _ := connect(t, srv, nil)
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
			schema, _ := tool.InputSchema.(map[string]any)
			if tool.Description == "" || schema["type"] != "object" || schema["additionalProperties"] == nil {
				t.Errorf("%s: description %q, schema %v", tool.Name, tool.Description, schema)
			}
		}
		if strings.Join(names, ",") != strings.Join(tc.want, ",") {
			t.Errorf("hostDir %q: tools %v, want %v", tc.hostDir, names, tc.want)
		}
		tpl, err := cs.ListResourceTemplates(context.Background(), nil)
		if err != nil || len(tpl.ResourceTemplates) != 1 || tpl.ResourceTemplates[0].URITemplate != "boxrun://{box}/{+path}" {
			t.Errorf("resource templates %+v, %v", tpl, err)
		}
		srv.Close()
	}
}

func TestTools_BadArguments(t *testing.T) {
	m := boxruntest.NewManager(t)
	srv := mcpserver.New(m, mcpserver.Config{MaxLifetime: time.Hour})
	defer srv.Close()
	cs, _ := connect(t, srv, nil)
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "test"})
	v := boxrun.CodeValidationError
	for _, tc := range []struct {
		name string
		tool string
		args map[string]any
		code boxrun.Code
	}{
		{"missing image", "create_box", map[string]any{}, v},
		{"empty image", "create_box", map[string]any{"image": ""}, v},
		{"unknown key", "create_box", map[string]any{"image": "test", "volumes": []string{"/:/host"}}, v},
		{"wrong type", "create_box", map[string]any{"image": "test", "cpu": "many"}, v},
		{"negative cpu", "create_box", map[string]any{"image": "test", "cpu": -1}, v},
		{"relative workdir", "create_box", map[string]any{"image": "test", "workdir": "tmp"}, v},
		{"egress without network", "create_box", map[string]any{"image": "test", "egress": map[string]any{"default": "deny"}}, v},
		{"bad egress action", "create_box", map[string]any{"image": "test", "network": true, "egress": map[string]any{"rules": []any{map[string]any{"action": "maybe", "cidr": "10.0.0.0/8"}}}}, v},
		{"egress on a driver without networking", "create_box", map[string]any{"image": "test", "network": true, "egress": map[string]any{"default": "deny"}}, v},
		{"keep with lifetime limit", "create_box", map[string]any{"image": "test", "keep": true}, v},
		{"negative timeout", "exec", map[string]any{"box": box.ID, "cmd": []string{"true"}, "timeout_seconds": -1}, v},
		{"huge timeout", "exec", map[string]any{"box": box.ID, "cmd": []string{"true"}, "timeout_seconds": 1e9}, v},
		{"no command", "exec", map[string]any{"box": box.ID}, v},
		{"cmd and shell", "exec", map[string]any{"box": box.ID, "cmd": []string{"true"}, "shell": "true"}, v},
		{"empty program", "exec", map[string]any{"box": box.ID, "cmd": []string{""}}, v},
		{"missing box", "exec", map[string]any{"cmd": []string{"true"}}, v},
		{"box with slash", "exec", map[string]any{"box": "../x", "cmd": []string{"true"}}, v},
		{"unknown box", "exec", map[string]any{"box": "box_nope", "cmd": []string{"true"}}, boxrun.CodeBoxNotFound},
		{"relative path", "read_file", map[string]any{"box": box.ID, "path": "etc/passwd"}, v},
		{"path escape", "read_file", map[string]any{"box": box.ID, "path": "/../../etc/passwd"}, v},
		{"path escape write", "write_file", map[string]any{"box": box.ID, "path": "/tmp/../../x", "content": "x"}, v},
		{"bad base64", "write_file", map[string]any{"box": box.ID, "path": "/x", "content": "!!", "encoding": "base64"}, v},
		{"bad encoding", "write_file", map[string]any{"box": box.ID, "path": "/x", "content": "x", "encoding": "rot13"}, v},
		{"missing file", "read_file", map[string]any{"box": box.ID, "path": "/no/such/file"}, boxrun.CodeRuntimeError}, // the API's code for a missing download
		{"bad status", "list_boxes", map[string]any{"status": "sleeping"}, v},
		{"upload disabled", "upload", map[string]any{"box": box.ID, "host_path": "x", "path": "/x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
			if tc.code == "" { // an unknown tool is a protocol error
				if err == nil && !res.IsError {
					t.Fatalf("want an error, got %s", text(res))
				}
				return
			}
			if err != nil {
				t.Fatalf("protocol error %v; want a tool error", err)
			}
			wantToolError(t, res, tc.code)
		})
	}
	if ids := boxIDs(t, m); len(ids) != 1 {
		t.Errorf("boxes after bad creates: %v, want only %s (nothing half-created)", ids, box.ID)
	}
}

func TestSession_OwnershipLimitsAndCleanup(t *testing.T) {
	m := boxruntest.NewManager(t)
	srv := mcpserver.New(m, mcpserver.Config{MaxBoxes: 2})
	defer srv.Close()
	a, aDone := connect(t, srv, nil)
	b, _ := connect(t, srv, nil)

	kept := ok[boxView](t, a, "create_box", map[string]any{"image": "test", "name": "kept", "keep": true})
	temp := ok[boxView](t, a, "create_box", map[string]any{"image": "test"})
	wantToolError(t, call(t, a, "create_box", map[string]any{"image": "test"}), boxrun.CodeResourceExceeded)
	if !kept.Owned || kept.Status != "running" {
		t.Errorf("created box %+v", kept)
	}

	// Session b sees none of a's boxes, by ID or name, and cannot touch them.
	if got := ok[struct{ Boxes []boxView }](t, b, "list_boxes", nil); len(got.Boxes) != 0 {
		t.Errorf("session b lists %+v", got.Boxes)
	}
	for _, box := range []string{kept.ID, "kept"} {
		wantToolError(t, call(t, b, "remove_box", map[string]any{"box": box}), boxrun.CodeBoxNotFound)
		wantToolError(t, call(t, b, "exec", map[string]any{"box": box, "cmd": []string{"true"}}), boxrun.CodeBoxNotFound)
		wantToolError(t, call(t, b, "read_file", map[string]any{"box": box, "path": "/etc/hostname"}), boxrun.CodeBoxNotFound)
	}
	if got := ok[struct{ Boxes []boxView }](t, a, "list_boxes", nil); len(got.Boxes) != 2 {
		t.Errorf("session a lists %+v", got.Boxes)
	}

	// Removing frees a slot.
	ok[map[string]any](t, a, "remove_box", map[string]any{"box": temp.ID})
	temp2 := ok[boxView](t, a, "create_box", map[string]any{"image": "test"})

	// The session ends: its boxes go, except the kept one.
	a.Close()
	if err := <-aDone; err != nil {
		t.Errorf("Run after the client closed: %v", err)
	}
	ids := boxIDs(t, m)
	if _, ok := ids[temp2.ID]; ok {
		t.Errorf("box %s outlived its session", temp2.ID)
	}
	if ids[kept.ID] != boxrun.StatusRunning {
		t.Errorf("kept box: %v", ids)
	}
}

func TestSession_LifetimeLimit(t *testing.T) {
	m := boxruntest.NewManager(t)
	srv := mcpserver.New(m, mcpserver.Config{MaxLifetime: 300 * time.Millisecond})
	defer srv.Close()
	cs, _ := connect(t, srv, nil)
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "test"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := boxIDs(t, m)[box.ID]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("box outlived MaxLifetime")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantToolError(t, call(t, cs, "exec", map[string]any{"box": box.ID, "cmd": []string{"true"}}), boxrun.CodeBoxNotFound)
}

func TestExec_TruncatesWithMarker(t *testing.T) {
	m := boxruntest.NewManager(t)
	srv := mcpserver.New(m, mcpserver.Config{MaxOutputBytes: 1000})
	defer srv.Close()
	cs, _ := connect(t, srv, nil)
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "test"})
	res := ok[execResult](t, cs, "exec", map[string]any{"box": box.ID,
		"shell": "echo START; i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo END; echo oops >&2; exit 3"})
	if res.ExitCode == nil || *res.ExitCode != 3 || res.Status != "failed" {
		t.Errorf("exit %v status %s", res.ExitCode, res.Status)
	}
	if !res.StdoutTruncated || !strings.HasPrefix(res.Stdout, "START\n") || !strings.HasSuffix(res.Stdout, "line1999\nEND\n") ||
		!strings.Contains(res.Stdout, " bytes truncated ...]") || len(res.Stdout) > 1100 {
		t.Errorf("stdout (%d bytes, truncated %v): %q", len(res.Stdout), res.StdoutTruncated, res.Stdout)
	}
	if res.Stderr != "oops\n" {
		t.Errorf("stderr %q", res.Stderr)
	}
}

func TestHostPaths_Confined(t *testing.T) {
	m := boxruntest.NewManager(t)
	host := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("from host\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret\n"), 0o600)
	os.Symlink(outside, filepath.Join(host, "link"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(host, "secret-link"))

	srv := mcpserver.New(m, mcpserver.Config{HostDir: host})
	defer srv.Close()
	cs, _ := connect(t, srv, nil)
	box := ok[boxView](t, cs, "create_box", map[string]any{"image": "test"})
	ok[map[string]any](t, cs, "upload", map[string]any{"box": box.ID, "host_path": "in.txt", "path": "/data/in.txt"})
	ok[map[string]any](t, cs, "download", map[string]any{"box": box.ID, "path": "/data/in.txt", "host_path": "back.txt"})
	if b, err := os.ReadFile(filepath.Join(host, "back.txt")); string(b) != "from host\n" {
		t.Errorf("downloaded %q, %v", b, err)
	}
	wantToolError(t, call(t, cs, "download", map[string]any{"box": box.ID, "path": "/data/in.txt", "host_path": "back.txt"}), boxrun.CodeValidationError)
	ok[map[string]any](t, cs, "download", map[string]any{"box": box.ID, "path": "/data/in.txt", "host_path": "back.txt", "overwrite": true})

	for _, tc := range []struct{ tool, hostPath string }{
		{"upload", "../" + filepath.Base(outside) + "/secret"},
		{"upload", filepath.Join(outside, "secret")},
		{"upload", "link/secret"},
		{"upload", "secret-link"},
		{"upload", "/etc/passwd"},
		{"download", "../escaped.txt"},
		{"download", "link/escaped.txt"},
		{"download", filepath.Join(outside, "escaped.txt")},
	} {
		args := map[string]any{"box": box.ID, "host_path": tc.hostPath, "path": "/data/in.txt"}
		wantToolError(t, call(t, cs, tc.tool, args), boxrun.CodeValidationError)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("something was written outside the host dir: %v", ents)
	}
	if r := ok[readFileResult](t, cs, "read_file", map[string]any{"box": box.ID, "path": "/data/in.txt"}); r.Content != "from host\n" {
		t.Errorf("the box got %q", r.Content)
	}
}

type readFileResult struct {
	Content   string `json:"content"`
	Encoding  string `json:"encoding"`
	Truncated bool   `json:"truncated"`
}
