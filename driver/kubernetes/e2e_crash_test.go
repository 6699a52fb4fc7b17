//go:build e2e_k8s

package kubernetes_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

// The crash child: creates boxes in BOXRUN_K8S_CRASH_NS concurrently and
// prints "created <handle>" for each, until it is killed.
func TestCrashChild(t *testing.T) {
	ns := os.Getenv("BOXRUN_K8S_CRASH_NS")
	if ns == "" {
		t.Skip("helper process of TestCrashPrune")
	}
	rc, _ := cluster(t)
	d := newDriver(t, rc, ns)
	img := boxruntest.BusyboxImage(t)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := d.Create(context.Background(), sandbox.Spec{BoxID: "crash", Image: img, Workdir: "/root"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				os.Stdout.WriteString("created " + h + "\n")
			} else {
				os.Stdout.WriteString("error " + err.Error() + "\n")
			}
			_ = i
		}()
	}
	wg.Wait()
	time.Sleep(time.Hour)
}

// SIGKILL the process creating pods; a new driver's Prune, told the handles
// the "database" knows (those the child reported created), removes every
// other pod and claim and keeps the known boxes running.
func TestCrashPrune(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	helperImage(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BOXRUN_K8S_CRASH_NS="+ns)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var known []string
	sc := bufio.NewScanner(out)
	deadline := time.After(5 * time.Minute)
	got := make(chan string)
	go func() {
		for sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	// Kill once two boxes exist and the others are still being created.
wait:
	for len(known) < 2 {
		select {
		case line, ok := <-got:
			if !ok {
				break wait
			}
			if h, ok := strings.CutPrefix(line, "created "); ok {
				known = append(known, h)
			}
		case <-deadline:
			break wait
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if len(known) < 2 {
		t.Fatalf("the child created %d boxes", len(known))
	}
	ctx := t.Context()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after SIGKILL: %d pods, %d known", len(pods.Items), len(known))
	d := newDriver(t, rc, ns)
	defer d.Close()
	if err := d.Prune(ctx, known); err != nil {
		t.Fatal(err)
	}
	for {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pvcs, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, p := range pods.Items {
			if !contains(known, p.Name) {
				left++
			}
		}
		for _, c := range pvcs.Items {
			if !contains(known, c.Name) {
				left++
			}
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d unknown pods/claims left after Prune", left)
		case <-time.After(500 * time.Millisecond):
		}
	}
	for _, h := range known {
		st, err := d.State(ctx, h)
		if err != nil || st != sandbox.Running {
			t.Errorf("known box %s: %v %v, want running", h, st, err)
		}
		r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"echo", "ok"}}, time.Minute)
		if r.Stdout != "ok\n" {
			t.Errorf("known box %s after prune: %+v", h, r)
		}
	}
	if err := d.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
