package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/testenv"
)

func runDoctor(t *testing.T, args ...string) (checks map[string]hostCheck, stdout string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--state-dir", t.TempDir(), "doctor"}, args...)
	err = run(context.Background(), full, strings.NewReader(""), &out, &errb)
	if len(args) > 0 && args[0] == "--json" {
		var list []hostCheck
		if jerr := json.Unmarshal(out.Bytes(), &list); jerr != nil {
			t.Fatalf("doctor --json output %q: %v", out.String(), jerr)
		}
		checks = map[string]hostCheck{}
		for _, c := range list {
			checks[c.Name] = c
		}
	}
	return checks, out.String(), err
}

// On this machine (runsc from $BOXRUN_RUNSC, a static boxrun as init) the
// gVisor checks pass and the command succeeds.
func TestDoctor_Host(t *testing.T) {
	runsc := os.Getenv(gvisor.RunscEnv)
	if runsc == "" {
		testenv.Skip(t, "$BOXRUN_RUNSC not set (make test sets it)")
	}
	init := t.TempDir() + "/boxrun"
	if err := gvisor.BuildInit(context.Background(), init); err != nil {
		t.Fatal(err)
	}
	t.Setenv(gvisor.InitEnv, init)
	checks, _, err := runDoctor(t, "--json")
	if got := checks["runsc"]; got.Status != checkOK || !strings.Contains(got.Detail, runsc) {
		t.Errorf("runsc check = %+v, want ok at %s", got, runsc)
	}
	if got := checks["in-box init"]; got.Status != checkOK {
		t.Errorf("init check = %+v, want ok", got)
	}
	for _, name := range []string{"privileges", "cgroups", "disk", "networking: nft"} {
		if _, ok := checks[name]; !ok {
			t.Errorf("no %q check in %v", name, checks)
		}
	}
	if err != nil {
		for _, c := range checks {
			if c.Status == checkMissing {
				t.Logf("missing: %+v", c)
			}
		}
		t.Errorf("doctor failed on a host with runsc and a static init: %v", err)
	}
}

// Without runsc anywhere the check says so, names the command that installs
// it, and the command fails (exit code 1), in text and in JSON.
func TestDoctor_MissingRunsc(t *testing.T) {
	t.Setenv(gvisor.RunscEnv, "")
	t.Setenv("PATH", t.TempDir())
	checks, _, err := runDoctor(t, "--json")
	c := checks["runsc"]
	if c.Status != checkMissing || !strings.Contains(c.Fix, "go install gvisor.dev/gvisor/runsc") {
		t.Errorf("runsc check = %+v, want missing with the go install fix", c)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code %d (%v), want 1", exitCode(err), err)
	}
	_, text, err := runDoctor(t)
	if exitCode(err) != 1 || !strings.Contains(text, "MISSING  runsc") || !strings.Contains(text, "fix: CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest") {
		t.Errorf("doctor text (exit %d):\n%s", exitCode(err), text)
	}
}
