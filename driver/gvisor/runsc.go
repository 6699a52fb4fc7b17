package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// globalArgs are the runsc flags that go before the command for a box.
func (d *Driver) globalArgs(m *boxMeta) []string {
	// --host-uds=create: the box's agent creates its socket on the agent
	// dir bind mount (see agent.go); the box cannot connect to host sockets.
	args := []string{"--root=" + d.runDir, "--platform=" + d.platform, "--overlay2=none", "--host-uds=create"}
	if m != nil && m.Network {
		args = append(args, "--network=sandbox")
	} else {
		args = append(args, "--network=none")
	}
	if d.limits.Cgroups == "" {
		args = append(args, "--ignore-cgroups")
	}
	return args
}

// runsc runs a short runsc command and returns its combined output. The
// command is not killed when ctx ends (a killed runsc leaves state behind);
// it gets at most timeout instead.
func (d *Driver) runsc(ctx context.Context, m *boxMeta, timeout time.Duration, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	full := append(d.globalArgs(m), args...)
	cmd := exec.CommandContext(tctx, d.runscPath, full...)
	cmd.SysProcAttr = d.userns.attr()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	d.log.DebugContext(ctx, "runsc", "args", args, "dur", time.Since(start), "err", err)
	if err != nil {
		return out.Bytes(), fmt.Errorf("runsc %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// runscState is the part of runsc's state file the driver reads.
type runscState struct {
	Sandbox struct {
		Pid int `json:"pid"`
	} `json:"sandbox"`
	GoferPid int    `json:"goferPid"`
	Status   string `json:"status"` // "creating", "created", "running", "stopped"
}

// commandStarted reports whether the container's process was started: its
// state is past "creating" and "created" (running, or stopped already).
func (s *runscState) commandStarted() bool {
	return s != nil && s.Status != "" && s.Status != "creating" && s.Status != "created"
}

func (d *Driver) stateFile(h string) string {
	return filepath.Join(d.runDir, h+"_sandbox:"+h+".state")
}

// readState reads runsc's state file of a box; nil when there is none.
func (d *Driver) readState(h string) *runscState {
	b, err := os.ReadFile(d.stateFile(h))
	if err != nil {
		return nil
	}
	var s runscState
	if json.Unmarshal(b, &s) != nil {
		return &runscState{}
	}
	return &s
}

// running reports whether the sandbox of h is alive: its state file names a
// sandbox process that exists, is not a zombie (G6), and is the sandbox of h.
func (d *Driver) running(h string) bool {
	s := d.readState(h)
	return s != nil && procAlive(s.Sandbox.Pid, h)
}

// procAlive reports whether pid is a live (not zombie) process whose
// command line mentions id.
func procAlive(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state is the field after the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	if st := stat[i+2]; st == 'Z' || st == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(id))
}

// killStrays SIGKILLs every host process whose command line names both the
// driver's runsc root and id (runsc create/exec/gofer/sandbox left by a
// crash). It returns how many it signalled.
func (d *Driver) killStrays(id string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	root := []byte("--root=" + d.runDir)
	n := 0
	self := os.Getpid()
	for _, e := range ents {
		pid := atoiPositive(e.Name())
		if pid <= 0 || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(append(cmdline, 0), append(root, 0)) || !bytes.Contains(cmdline, []byte(id)) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			n++
		}
	}
	return n
}
