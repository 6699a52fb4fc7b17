package boxapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/boxrun/boxrun/boxapi"
)

func TestFormatTime(t *testing.T) {
	base := time.Date(2025, 3, 1, 10, 22, 33, 0, time.UTC)
	for _, tc := range []struct {
		ns   int
		want string
	}{
		{0, "2025-03-01T10:22:33+00:00"},
		{123000000, "2025-03-01T10:22:33.123+00:00"},
		{123456000, "2025-03-01T10:22:33.123456+00:00"},
		{123456789, "2025-03-01T10:22:33.123456789+00:00"},
		{100, "2025-03-01T10:22:33.000000100+00:00"},
	} {
		got := boxapi.FormatTime(base.Add(time.Duration(tc.ns)))
		if got != tc.want {
			t.Errorf("FormatTime(+%dns) = %q, want %q", tc.ns, got, tc.want)
		}
		back, err := boxapi.ParseTime(got)
		if err != nil || !back.Equal(base.Add(time.Duration(tc.ns))) {
			t.Errorf("ParseTime(%q) = %v, %v", got, back, err)
		}
	}
	if got := boxapi.FormatTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))); got != "2025-03-01T11:00:00+00:00" {
		t.Errorf("non-UTC time formatted as %q", got)
	}
}

func keys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestBoxJSON(t *testing.T) {
	want := []string{"boxlite_id", "cpu", "created_at", "disk_size_gb", "env", "error_code", "error_message",
		"id", "image", "memory_mb", "name", "network", "started_at", "status", "stopped_at", "volumes", "workdir"}
	b := boxapi.Box{ID: "box_abcdefghijkl", Status: boxapi.StatusRunning, Image: "alpine", CPU: 2, MemoryMB: 1024,
		DiskSizeGB: 8, Workdir: "/root", CreatedAt: time.Now()}
	if got := keys(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("box keys = %v, want %v", got, want)
	}
	raw, _ := json.Marshal(b)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"name", "env", "volumes", "boxlite_id", "error_code", "error_message", "started_at", "stopped_at"} {
		if m[k] != nil {
			t.Errorf("%s = %v, want null", k, m[k])
		}
	}
	b.Name, b.Handle, b.StartedAt = "dev", "h1", time.Now()
	b.Volumes = []boxapi.Volume{{HostPath: "/h", GuestPath: "/g", Readonly: true}}
	raw, _ = json.Marshal(b)
	var back boxapi.Box
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Name != "dev" || back.Handle != "h1" || !back.StartedAt.Equal(b.StartedAt.UTC()) || !reflect.DeepEqual(back.Volumes, b.Volumes) {
		t.Errorf("round trip = %+v", back)
	}
}

func TestExecJSON(t *testing.T) {
	want := []string{"box_id", "cmd", "created_at", "env", "error_message", "exit_code", "finished_at", "id",
		"status", "timeout_ms", "workdir"}
	e := boxapi.Exec{ID: "exec_abcdefghijkl", BoxID: "box_x", Status: boxapi.ExecRunning, CreatedAt: time.Now()}
	if got := keys(t, e); !reflect.DeepEqual(got, want) {
		t.Fatalf("exec keys = %v, want %v", got, want)
	}
	raw, _ := json.Marshal(e)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if cmd, ok := m["cmd"].([]any); !ok || len(cmd) != 0 {
		t.Errorf("cmd = %v, want []", m["cmd"])
	}
	code := 0
	e.ExitCode, e.TimeoutMS, e.Workdir = &code, 500, "/tmp"
	raw, _ = json.Marshal(e)
	var back boxapi.Exec
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.ExitCode == nil || *back.ExitCode != 0 || back.TimeoutMS != 500 || back.Workdir != "/tmp" {
		t.Errorf("round trip = %+v", back)
	}
}

func TestErrorKinds(t *testing.T) {
	for code, kind := range map[boxapi.Code]error{
		boxapi.CodeBoxNotFound:         boxapi.ErrNotFound,
		boxapi.CodeExecNotFound:        boxapi.ErrNotFound,
		boxapi.CodeNameAlreadyExists:   boxapi.ErrAlreadyExists,
		boxapi.CodeBoxNotRunning:       boxapi.ErrConflict,
		boxapi.CodeResourceExceeded:    boxapi.ErrResourceExceeded,
		boxapi.CodeValidationError:     boxapi.ErrInvalid,
		boxapi.CodeImagePullFailed:     boxapi.ErrImagePull,
		boxapi.CodeRuntimeError:        boxapi.ErrRuntime,
		boxapi.CodeExecAlreadyFinished: boxapi.ErrConflict,
	} {
		err := error(&boxapi.Error{Code: code, Message: "m"})
		if !errors.Is(err, kind) {
			t.Errorf("%s is not %v", code, kind)
		}
		if errors.Is(err, boxapi.ErrClosed) {
			t.Errorf("%s matches ErrClosed", code)
		}
		if got := boxapi.ErrorCode(err); got != code {
			t.Errorf("ErrorCode = %s, want %s", got, code)
		}
	}
}
