package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// fixture is the state every scenario starts from: a running box "dev", a
// stopped box "old", a finished exec and a running exec in dev.
type fixture struct {
	*env
	dev, old, done, run string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := newEnv(t)
	old := e.createBox(`{"image":"busybox","name":"old"}`)
	if r := e.do("POST", "/v1/boxes/old:stop", ""); r.status != 200 {
		t.Fatalf("stop old: %d %s", r.status, r.body)
	}
	dev := e.createBox(`{"image":"busybox","name":"dev","env":{"A":"1"}}`)
	done := e.startExec(dev.ID, "sh", "-c", "echo hello; echo oops >&2; exit 3")
	e.waitExec(done.ID)
	run := e.startExec(dev.ID, "sleep", "30")
	return &fixture{env: e, dev: dev.ID, old: old.ID, done: done.ID, run: run.ID}
}

func (f *fixture) expand(s string) string {
	return strings.NewReplacer("{dev}", f.dev, "{old}", f.old, "{done}", f.done, "{run}", f.run).Replace(s)
}

// scenario is one request against a fresh fixture.
type scenario struct {
	name         string
	method, path string
	body         string
	hdr          []string // header name/value pairs ("" value deletes)
	wantStatus   int
	golden       string // testdata/golden file for the JSON body
	wantContains string // substring of the body
	wantCode     string // envelope code
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.do(sc.method, f.expand(sc.path), f.expand(sc.body), sc.hdr...)
			if r.status != sc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, sc.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); sc.method != "HEAD" && r.status != http.StatusSeeOther &&
				!strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q", ct)
			}
			if sc.golden != "" {
				golden(t, sc.golden, r.body)
			}
			if sc.wantContains != "" && !strings.Contains(string(r.body), f.expand(sc.wantContains)) {
				t.Errorf("body %s does not contain %q", r.body, f.expand(sc.wantContains))
			}
			if sc.wantCode != "" {
				env := jsonOf[map[string]any](t, r)
				if len(env) != 2 || env["code"] != sc.wantCode || env["message"] == nil {
					t.Errorf("envelope = %v, want code %s and exactly code+message", env, sc.wantCode)
				}
			}
		})
	}
}

func TestInfo(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OK", method: "GET", path: "/v1/info", wantStatus: 200, golden: "info.json"},
		{name: "ErrMethod", method: "POST", path: "/v1/info", body: `{}`, wantStatus: 405, wantCode: "VALIDATION_ERROR"},
		{name: "DriverExtension", method: "GET", path: "/v1/driver", wantStatus: 200, wantContains: `"name":"fake"`},
	})
}

func TestCreateBox(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OK", method: "POST", path: "/v1/boxes", body: `{"image":"busybox"}`, wantStatus: 201, golden: "box_created.json"},
		{name: "OKPythonSDK", method: "POST", path: "/v1/boxes",
			body:       `{"image":"python","cpu":2,"memory_mb":1024,"disk_size_gb":8,"network":false,"workdir":"/root","name":"py","env":{"K":"V"}}`,
			wantStatus: 201, golden: "box_created_full.json"},
		{name: "OKRustNulls", method: "POST", path: "/v1/boxes",
			body:       `{"image":"busybox","name":null,"env":null,"volumes":null,"cpu":null,"memory_mb":null,"disk_size_gb":null,"network":null,"workdir":null}`,
			wantStatus: 201, golden: "box_created.json"},
		{name: "OKUnknownFieldsIgnored", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","bogus":[1,2]}`, wantStatus: 201},
		{name: "OKCharsetParam", method: "POST", path: "/v1/boxes", body: `{"image":"busybox"}`,
			hdr: []string{"Content-Type", "application/json; charset=utf-8"}, wantStatus: 201},
		{name: "ErrCPUZero", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","cpu":0}`, wantStatus: 422, golden: "err_cpu.json"},
		{name: "ErrCPUNegative", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","cpu":-1}`, wantStatus: 422, golden: "err_cpu.json"},
		{name: "ErrMemory", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","memory_mb":0}`, wantStatus: 422, wantContains: "memory_mb must be greater than 0"},
		{name: "ErrDisk", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","disk_size_gb":-5}`, wantStatus: 422, wantContains: "disk_size_gb must be greater than 0"},
		{name: "ErrOrderCPUFirst", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","cpu":0,"memory_mb":0,"workdir":"x"}`, wantStatus: 422, wantContains: "cpu must be"},
		{name: "ErrWorkdirRelative", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","workdir":"root"}`, wantStatus: 422, golden: "err_workdir.json"},
		{name: "ErrWorkdirEmpty", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","workdir":""}`, wantStatus: 422, golden: "err_workdir.json"},
		{name: "ErrImageMissing", method: "POST", path: "/v1/boxes", body: `{"cpu":1}`, wantStatus: 422, wantCode: "VALIDATION_ERROR", wantContains: "missing field `image`"},
		{name: "ErrImageNull", method: "POST", path: "/v1/boxes", body: `{"image":null}`, wantStatus: 422, wantContains: "missing field `image`"},
		{name: "ErrWrongType", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","cpu":"2"}`, wantStatus: 422, wantCode: "VALIDATION_ERROR", wantContains: "cpu"},
		{name: "ErrEnvValueType", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","env":{"A":1}}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
		{name: "ErrNotObject", method: "POST", path: "/v1/boxes", body: `[1]`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
		{name: "ErrVolumeField", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","volumes":[{"host_path":"/tmp"}]}`, wantStatus: 422, wantContains: "guest_path"},
		{name: "ErrVolumeHostMissing", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","volumes":[{"host_path":"/nonexistent/x","guest_path":"/data"}]}`,
			wantStatus: 400, wantCode: "RUNTIME_ERROR", wantContains: "Volume host path does not exist: /nonexistent/x"},
		{name: "ErrBadJSON", method: "POST", path: "/v1/boxes", body: `{"image":`, wantStatus: 400, golden: "err_bad_json.json"},
		{name: "ErrTrailingJSON", method: "POST", path: "/v1/boxes", body: `{"image":"a"} x`, wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "ErrNoContentType", method: "POST", path: "/v1/boxes", body: `{"image":"busybox"}`, hdr: []string{"Content-Type", ""}, wantStatus: 415, golden: "err_content_type.json"},
		{name: "ErrTextPlain", method: "POST", path: "/v1/boxes", body: `{"image":"busybox"}`, hdr: []string{"Content-Type", "text/plain"}, wantStatus: 415, wantCode: "VALIDATION_ERROR"},
		{name: "ErrTooLarge", method: "POST", path: "/v1/boxes", body: `{"image":"` + strings.Repeat("x", 3<<20) + `"}`, wantStatus: 413, wantCode: "VALIDATION_ERROR"},
		{name: "ErrNameExists", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","name":"dev"}`, wantStatus: 409, golden: "err_name_exists.json"},
		{name: "ErrNameIsID", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","name":"{old}"}`, wantStatus: 409, wantCode: "NAME_ALREADY_EXISTS"},
		{name: "ErrResourceCPU", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","cpu":63}`, wantStatus: 409, golden: "err_resource_cpu.json"},
		{name: "ErrResourceMemory", method: "POST", path: "/v1/boxes", body: `{"image":"busybox","memory_mb":1000000}`, wantStatus: 409, wantCode: "RESOURCE_EXCEEDED", wantContains: "Total memory limit"},
	})
}

func TestListBoxes(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OK", method: "GET", path: "/v1/boxes", wantStatus: 200, golden: "box_list.json"},
		{name: "OKAll", method: "GET", path: "/v1/boxes?status=all", wantStatus: 200, golden: "box_list.json"},
		{name: "OKRunning", method: "GET", path: "/v1/boxes?status=running", wantStatus: 200, golden: "box_list_running.json"},
		{name: "OKUnknownStatus", method: "GET", path: "/v1/boxes?status=bogus&x=1", wantStatus: 200, golden: "empty_list.json"},
		{name: "ErrMethod", method: "PUT", path: "/v1/boxes", body: `{}`, wantStatus: 405, wantCode: "VALIDATION_ERROR"},
	})
}

func TestGetBox(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OKByID", method: "GET", path: "/v1/boxes/{dev}", wantStatus: 200, golden: "box_get.json"},
		{name: "OKByName", method: "GET", path: "/v1/boxes/dev", wantStatus: 200, golden: "box_get.json"},
		{name: "OKColonStripped", method: "GET", path: "/v1/boxes/dev:foo:bar", wantStatus: 200, golden: "box_get.json"},
		{name: "OKStopped", method: "GET", path: "/v1/boxes/old", wantStatus: 200, golden: "box_stopped.json"},
		{name: "ErrNotFound", method: "GET", path: "/v1/boxes/nope", wantStatus: 404, golden: "err_box_not_found.json"},
		{name: "HEAD", method: "HEAD", path: "/v1/boxes/dev", wantStatus: 200},
	})
}

func TestBoxActions(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "StopOK", method: "POST", path: "/v1/boxes/dev:stop", wantStatus: 200, golden: "box_stopped_dev.json"},
		{name: "StopEscapedColon", method: "POST", path: "/v1/boxes/dev%3Astop", wantStatus: 200, golden: "box_stopped_dev.json"},
		{name: "StopBodyIgnored", method: "POST", path: "/v1/boxes/{dev}:stop", body: `garbage`, wantStatus: 200},
		{name: "StopErrNotRunning", method: "POST", path: "/v1/boxes/old:stop", wantStatus: 400, golden: "err_box_not_running.json"},
		{name: "StopErrNotFound", method: "POST", path: "/v1/boxes/nope:stop", wantStatus: 404, wantCode: "BOX_NOT_FOUND"},
		{name: "StartOK", method: "POST", path: "/v1/boxes/old:start", wantStatus: 200, golden: "box_started.json"},
		{name: "StartErrRunning", method: "POST", path: "/v1/boxes/dev:start", wantStatus: 409, golden: "err_box_already_running.json"},
		{name: "ErrMissingVerb", method: "POST", path: "/v1/boxes/dev", wantStatus: 400, golden: "err_missing_verb.json"},
		{name: "ErrUnknownVerb", method: "POST", path: "/v1/boxes/dev:restart", wantStatus: 400, golden: "err_unknown_verb.json"},
		{name: "NameWithColonSplitsAtLast", method: "POST", path: "/v1/boxes/a:b:stop", wantStatus: 404, wantContains: "Box 'a:b' not found"},
	})
}

func TestRemoveBox(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OKForce", method: "DELETE", path: "/v1/boxes/dev?force=true", wantStatus: 200, golden: "ok.json"},
		{name: "OKStopped", method: "DELETE", path: "/v1/boxes/old", wantStatus: 200, golden: "ok.json"},
		{name: "OKColonStripped", method: "DELETE", path: "/v1/boxes/old:whatever", wantStatus: 200, golden: "ok.json"},
		{name: "ErrRunning", method: "DELETE", path: "/v1/boxes/dev", wantStatus: 409, golden: "err_remove_running.json"},
		{name: "ErrForceNotExactlyTrue", method: "DELETE", path: "/v1/boxes/dev?force=True", wantStatus: 409, wantCode: "BOX_ALREADY_RUNNING"},
		{name: "ErrForceOne", method: "DELETE", path: "/v1/boxes/dev?force=1", wantStatus: 409, wantCode: "BOX_ALREADY_RUNNING"},
		{name: "ErrNotFound", method: "DELETE", path: "/v1/boxes/nope?force=true", wantStatus: 404, wantCode: "BOX_NOT_FOUND"},
	})
}

func TestStartExec(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "OK", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["sleep","5"]}`, wantStatus: 201, golden: "exec_created.json"},
		{name: "OKAllFields", method: "POST", path: "/v1/boxes/dev/exec",
			body: `{"cmd":["sleep","5"],"env":{"X":"y"},"workdir":"/","timeout_ms":60000}`, wantStatus: 201, golden: "exec_created_full.json"},
		{name: "OKNulls", method: "POST", path: "/v1/boxes/dev/exec",
			body: `{"cmd":["sleep","5"],"env":null,"workdir":null,"timeout_ms":null}`, wantStatus: 201, golden: "exec_created.json"},
		{name: "ErrCmdEmpty", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":[]}`, wantStatus: 422, golden: "err_cmd.json"},
		{name: "ErrCmdMissing", method: "POST", path: "/v1/boxes/dev/exec", body: `{}`, wantStatus: 422, wantContains: "missing field `cmd`"},
		{name: "ErrCmdType", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":"ls"}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
		{name: "ErrWorkdir", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"workdir":"tmp"}`, wantStatus: 422, golden: "err_workdir.json"},
		{name: "ErrTimeoutZero", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"timeout_ms":0}`, wantStatus: 422, golden: "err_timeout.json"},
		{name: "OKOutputLimit", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"output_limit":100}`, wantStatus: 201},
		{name: "ErrOutputLimitZero", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"output_limit":0}`, wantStatus: 422, wantCode: "VALIDATION_ERROR", wantContains: "output_limit"},
		{name: "ErrOutputLimitType", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"output_limit":"1k"}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
		{name: "ErrTimeoutNegative", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["ls"],"timeout_ms":-1}`, wantStatus: 422, golden: "err_timeout.json"},
		{name: "ErrValidationBeforeLookup", method: "POST", path: "/v1/boxes/nope/exec", body: `{"cmd":[]}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
		{name: "ErrBoxNotFound", method: "POST", path: "/v1/boxes/nope/exec", body: `{"cmd":["ls"]}`, wantStatus: 404, wantCode: "BOX_NOT_FOUND"},
		{name: "ErrBoxNotRunning", method: "POST", path: "/v1/boxes/old/exec", body: `{"cmd":["ls"]}`, wantStatus: 400, golden: "err_exec_not_running.json"},
		{name: "ErrStdinB64", method: "POST", path: "/v1/boxes/dev/exec", body: `{"cmd":["cat"],"stdin_b64":"%%%"}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
	})
}

func TestExecQueries(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "ListOK", method: "GET", path: "/v1/boxes/dev/execs", wantStatus: 200, golden: "exec_list.json"},
		{name: "ListEmpty", method: "GET", path: "/v1/boxes/old/execs", wantStatus: 200, golden: "empty_list.json"},
		{name: "ListErrNotFound", method: "GET", path: "/v1/boxes/nope/execs", wantStatus: 404, wantCode: "BOX_NOT_FOUND"},
		{name: "GetFinished", method: "GET", path: "/v1/boxes/dev/exec/{done}", wantStatus: 200, golden: "exec_failed.json"},
		{name: "GetRunning", method: "GET", path: "/v1/boxes/dev/exec/{run}", wantStatus: 200, golden: "exec_running.json"},
		{name: "GetIgnoresBoxSegment", method: "GET", path: "/v1/boxes/anything/exec/{done}", wantStatus: 200, golden: "exec_failed.json"},
		{name: "GetErrNotFound", method: "GET", path: "/v1/boxes/dev/exec/exec_nope", wantStatus: 404, golden: "err_exec_not_found.json"},
		{name: "GetVerbNotSplit", method: "GET", path: "/v1/boxes/dev/exec/{done}:cancel", wantStatus: 404, wantCode: "EXEC_NOT_FOUND"},
		{name: "WaitExtension", method: "GET", path: "/v1/boxes/dev/exec/{done}:wait", wantStatus: 200, golden: "exec_failed.json"},
		{name: "CancelOK", method: "POST", path: "/v1/boxes/dev/exec/{run}:cancel", wantStatus: 200, golden: "exec_canceled.json"},
		{name: "CancelErrFinished", method: "POST", path: "/v1/boxes/x/exec/{done}:cancel", wantStatus: 400, golden: "err_exec_finished.json"},
		{name: "CancelErrNotFound", method: "POST", path: "/v1/boxes/x/exec/exec_nope:cancel", wantStatus: 404, wantCode: "EXEC_NOT_FOUND"},
		{name: "CancelErrMissingVerb", method: "POST", path: "/v1/boxes/x/exec/{run}", wantStatus: 400, golden: "err_missing_cancel.json"},
		{name: "CancelErrUnknownVerb", method: "POST", path: "/v1/boxes/x/exec/{run}:kill", wantStatus: 400, wantContains: "Unknown action: kill"},
		{name: "EventsErrNotFound", method: "GET", path: "/v1/boxes/dev/exec/exec_nope/events", wantStatus: 404, wantCode: "EXEC_NOT_FOUND"},
	})
}

func TestRunAndGC(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "RunOK", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["sh","-c","echo out; echo err >&2; exit 7"]}`, wantStatus: 200, golden: "run.json"},
		{name: "RunOKEnvTimeout", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["sh","-c","echo $K"],"env":{"K":"v"},"timeout_ms":30000,"disk_size_gb":8,"name":"ignored","workdir":"x"}`,
			wantStatus: 200, golden: "run_env.json"},
		{name: "RunErrCmdEmpty", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":[]}`, wantStatus: 422, golden: "err_cmd.json"},
		{name: "RunErrCmdMissing", method: "POST", path: "/v1/run", body: `{"image":"busybox"}`, wantStatus: 422, wantContains: "missing field `cmd`"},
		{name: "RunErrImageMissing", method: "POST", path: "/v1/run", body: `{"cmd":["ls"]}`, wantStatus: 422, wantContains: "missing field `image`"},
		{name: "RunErrCPU", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["ls"],"cpu":0}`, wantStatus: 422, golden: "err_cpu.json"},
		{name: "RunErrMemory", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["ls"],"memory_mb":-1}`, wantStatus: 422, wantContains: "memory_mb must be greater than 0"},
		{name: "RunErrDisk", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["ls"],"disk_size_gb":0}`, wantStatus: 422, wantContains: "disk_size_gb must be greater than 0"},
		{name: "RunErrTimeout", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["ls"],"timeout_ms":0}`, wantStatus: 422, golden: "err_timeout.json"},
		{name: "RunErrResource", method: "POST", path: "/v1/run", body: `{"image":"busybox","cmd":["ls"],"cpu":100}`, wantStatus: 409, wantCode: "RESOURCE_EXCEEDED"},
		{name: "GCDefault", method: "POST", path: "/v1/gc", body: `{}`, wantStatus: 200, golden: "gc_0.json"},
		{name: "GCNull", method: "POST", path: "/v1/gc", body: `{"older_than":null}`, wantStatus: 200, golden: "gc_0.json"},
		{name: "GCZero", method: "POST", path: "/v1/gc", body: `{"older_than":0}`, wantStatus: 200, golden: "gc_1.json"},
		{name: "GCNegative", method: "POST", path: "/v1/gc", body: `{"older_than":-100}`, wantStatus: 200, golden: "gc_1.json"},
		{name: "GCHuge", method: "POST", path: "/v1/gc", body: `{"older_than":9223372036854775807}`, wantStatus: 200, golden: "gc_0.json"},
		{name: "GCErrNoBody", method: "POST", path: "/v1/gc", wantStatus: 415, wantCode: "VALIDATION_ERROR"},
		{name: "GCErrType", method: "POST", path: "/v1/gc", body: `{"older_than":"1h"}`, wantStatus: 422, wantCode: "VALIDATION_ERROR"},
	})
}

func TestRoutes(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "RootRedirect", method: "GET", path: "/", wantStatus: 303},
		{name: "UI", method: "GET", path: "/ui", wantStatus: 200, wantContains: "<title>BoxRun</title>"},
		{name: "ErrUnknownPath", method: "GET", path: "/v2/boxes", wantStatus: 404, golden: "err_no_route.json"},
		{name: "ErrUnknownSubpath", method: "GET", path: "/v1/boxes/dev/nope", wantStatus: 404, wantCode: "VALIDATION_ERROR"},
		{name: "ErrTrailingSlash", method: "GET", path: "/v1/boxes/", wantStatus: 404, wantCode: "VALIDATION_ERROR"},
		{name: "ErrMethodBoxes", method: "PATCH", path: "/v1/boxes/dev", wantStatus: 405, golden: "err_method.json"},
		{name: "ErrMethodExec", method: "GET", path: "/v1/boxes/dev/exec", wantStatus: 405, wantCode: "VALIDATION_ERROR"},
		{name: "ErrCrossOrigin", method: "POST", path: "/v1/boxes/dev:stop", hdr: []string{"Origin", "http://evil.example"}, wantStatus: 403, wantCode: "FORBIDDEN"},
		{name: "ImagesWithoutStore", method: "GET", path: "/v1/images", wantStatus: 400, wantCode: "RUNTIME_ERROR"},
		{name: "PullWithoutStore", method: "POST", path: "/v1/images", body: `{"ref":"busybox"}`, wantStatus: 400, wantCode: "RUNTIME_ERROR"},
		{name: "PullErrMissingRef", method: "POST", path: "/v1/images", body: `{}`, wantStatus: 422, wantContains: "missing field `ref`"},
		{name: "RemoveImageErrNoRef", method: "DELETE", path: "/v1/images", wantStatus: 400, wantCode: "VALIDATION_ERROR"},
		{name: "PruneWithoutStore", method: "POST", path: "/v1/images:prune", wantStatus: 400, wantCode: "RUNTIME_ERROR"},
	})
}
