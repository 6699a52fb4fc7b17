//go:build e2e_k8s

package kubernetes_test

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/sandbox"
)

// podIP returns the pod IP of box h.
func podIP(t *testing.T, cs *k8s.Clientset, ns, h string) string {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(t.Context(), h, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.PodIP == "" {
		t.Fatalf("pod %s has no IP", h)
	}
	return p.Status.PodIP
}

// nodeIP returns the InternalIP of the cluster's (single) node.
func nodeIP(t *testing.T, cs *k8s.Clientset) string {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address
			}
		}
	}
	t.Fatal("no node with an InternalIP")
	return ""
}

// The test cluster of scripts/k8s-up.sh keeps box pods from the host and
// from each other: a box cannot open a connection to another box's pod (the
// bridge isolates its ports), to a listener on the node's address, or to
// the kubelet; the host itself reaches the pod (so the listener was there).
func TestPodIsolation(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	d := newDriver(t, rc, ns)
	defer d.Close()
	ctx := t.Context()
	img := boxruntest.BusyboxImage(t)
	var hs []string
	for _, id := range []string{"attacker", "victim"} {
		h, err := d.Create(ctx, sandbox.Spec{BoxID: id, Image: img, Workdir: "/root", Network: true})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Remove(context.Background(), h)
		hs = append(hs, h)
	}
	attacker, victim := hs[0], hs[1]
	victimIP := podIP(t, cs, ns, victim)

	// The victim serves "hi" on 8080, again and again.
	srv, err := d.Exec(ctx, victim, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "while :; do echo hi | nc -l -p 8080; done"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Signal(context.Background(), 9)
	// The host reaches it (retried while nc starts).
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(victimIP, "8080"), 5*time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && line == "hi\n" {
				break
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("host to victim pod %s:8080: %v", victimIP, err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A listener of the host on the node's address: no box may reach it.
	node := nodeIP(t, cs)
	ln, err := net.Listen("tcp", net.JoinHostPort(node, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte("host\n"))
			c.Close()
		}
	}()
	hostPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	for _, target := range []struct{ name, addr, port string }{
		{"another box's pod", victimIP, "8080"},
		{"a host listener on the node IP", node, hostPort},
		{"the kubelet", node, "10250"},
	} {
		r := boxruntest.Run(t, d, attacker, sandbox.ProcessSpec{Cmd: []string{"sh", "-c",
			"timeout 15 nc -w 5 " + target.addr + " " + target.port + " </dev/null; echo rc=$?"}}, time.Minute)
		if strings.Contains(r.Stdout, "hi") || strings.Contains(r.Stdout, "host") || strings.Contains(r.Stdout, "rc=0") {
			t.Errorf("box reached %s (%s:%s): %+v", target.name, target.addr, target.port, r)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host listener accepted %d connections from a box", n)
	}
}
