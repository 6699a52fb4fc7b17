package gvisor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/internal/crashtest"
	"github.com/boxrun/boxrun/internal/testenv"
)

// managerCrashEnv tells a re-executed test binary to act as a server that
// starts execs and is SIGKILLed (TestManagerCrashChild).
const managerCrashEnv = "BOXRUN_GVISOR_MANAGER_CRASH_DIR"

// openManagerAt opens a Manager with a gVisor driver on dir (as a server
// restarted on the same state would).
func openManagerAt(t *testing.T, dir string) (*boxrun.Manager, error) {
	d, err := gvisor.New(gvisor.Config{Dir: filepath.Join(dir, "gvisor")})
	if err != nil {
		return nil, err
	}
	m, err := openManager(dir, d)
	if err != nil {
		d.Close()
		return nil, err
	}
	return m, nil
}

// TestManagerCrashChild is not a test: it is the server that
// TestManager_ServerCrash starts and SIGKILLs. It creates a box, starts
// `sleep 300`, a shell with a background `sleep 301`, and `sleep 302`
// whose stdin is still being fed,
// prints their IDs and waits to be killed.
func TestManagerCrashChild(t *testing.T) {
	dir := os.Getenv(managerCrashEnv)
	if dir == "" {
		t.Skip("helper process for TestManager_ServerCrash")
	}
	m, err := openManagerAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	box, err := m.Create(ctx, boxapi.BoxSpec{Image: "dir:" + os.Getenv(managerCrashEnv+"_ROOTFS"), Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{box.ID}
	for _, req := range []boxapi.ExecRequest{
		{Cmd: []string{"sleep", "300"}},
		{Cmd: []string{"sh", "-c", "sleep 301 & sleep 3000"}},
		{Cmd: []string{"sh", "-c", "exec sleep 302"}, Stdin: blockingReader{}},
	} {
		e, err := m.StartExec(ctx, box.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	// Every process runs before the parent kills this one.
	for deadline := time.Now().Add(time.Minute); ; {
		var out strings.Builder
		if _, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"ps", "-o", "args"}}, &out, nil); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "sleep 300") && strings.Contains(out.String(), "sleep 301") && strings.Contains(out.String(), "sleep 302") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("execs did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("READY", strings.Join(ids, " "))
	select {}
}

// TestManager_ServerCrash SIGKILLs a server (Manager over gVisor) during
// three long execs. After a restart on the same state, the execs are
// failed, none of their processes (children included) is left in the box,
// :cancel of such an exec answers EXEC_ALREADY_FINISHED (nothing is left to
// stop), and the box keeps running and takes new execs.
func TestManager_ServerCrash(t *testing.T) {
	if _, err := newDriverOnly(t); err != nil {
		testenv.Skip(t, err.Error())
	}
	dir := t.TempDir()
	child := crashtest.Start(t, "TestManagerCrashChild", []string{managerCrashEnv + "=" + dir, managerCrashEnv + "_ROOTFS=" + busyboxRootfs(t)}, "-test.v")
	f := child.MustAwait(t, "the server", "READY", 5, 10*time.Minute)
	child.Kill()
	ids := f[1:]
	m, err := openManagerAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	box := ids[0]
	t.Cleanup(func() {
		m.Remove(context.Background(), box, true)
		m.Close()
	})
	ctx := context.Background()
	for _, id := range ids[1:] {
		e, err := m.GetExec(ctx, id)
		if err != nil || e.Status == boxapi.ExecRunning || e.ErrorMessage == "" {
			t.Errorf("exec %s after the restart: %+v %v, want finished with a reason", id, e, err)
		}
		_, err = m.CancelExec(ctx, id)
		var be *boxapi.Error
		if !errors.As(err, &be) || be.Code != boxapi.CodeExecAlreadyFinished {
			t.Errorf(":cancel of %s after the restart: %v, want EXEC_ALREADY_FINISHED", id, err)
		}
	}
	var ps string
	for deadline := time.Now().Add(30 * time.Second); ; {
		var out strings.Builder
		if _, err := m.Exec(ctx, box, boxapi.ExecRequest{Cmd: []string{"ps", "-o", "args"}}, &out, nil); err != nil {
			t.Fatalf("exec after the restart: %v", err)
		}
		ps = out.String()
		if !strings.Contains(ps, "sleep 30") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the crashed server's execs still run in the box 30 s after the restart:\n%s", ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b, err := m.Get(ctx, box); err != nil || b.Status != boxapi.StatusRunning {
		t.Errorf("box after the restart: %+v %v", b, err)
	}
}

// blockingReader is a stdin that never ends (until the process dies).
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }
