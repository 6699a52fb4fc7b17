//go:build e2e_k8s

package kubernetes_test

// The driver against a real cluster: `make e2e-k8s` (scripts/k8s-up.sh, then
// go test -tags e2e_k8s). BOXRUN_K8S_KUBECONFIG names the admin kubeconfig
// (default /var/lib/boxrun-k8s/admin.kubeconfig); BOXRUN_K8S_CTR the ctr
// binary and BOXRUN_K8S_CONTAINERD its socket, to import the helper image
// built from this tree. Behind a build tag, these tests fail rather than
// skip when the cluster is missing.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/boxrun/boxrun/boxruntest"
	"github.com/boxrun/boxrun/driver/kubernetes"
	"github.com/boxrun/boxrun/driver/kubernetes/internal/kubeimage"
	"github.com/boxrun/boxrun/sandbox"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

var (
	helperOnce sync.Once
	helperRef  string
	helperBin  string // the built boxrun binary (kept for the gVisor baseline)
	helperErr  error
)

// helperImage builds cmd/boxrun, packs it as the helper image (the binary at
// /boxrun, /boxrun-init a symlink to it: the layout deploy/kubernetes
// expects) and imports it into the cluster's containerd (once per test
// binary).
func helperImage(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "boxrun-k8s-helper")
		if err != nil {
			helperErr = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "boxrun")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/boxrun/boxrun/cmd/boxrun")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("build boxrun: %v\n%s", err, out)
			return
		}
		body, err := os.ReadFile(bin)
		if err != nil {
			helperErr = err
			return
		}
		helperBin = filepath.Join(os.TempDir(), "boxrun-k8s-e2e-init")
		if err := os.WriteFile(helperBin+".tmp", body, 0o755); err != nil {
			helperErr = err
			return
		}
		if err := os.Rename(helperBin+".tmp", helperBin); err != nil {
			helperErr = err
			return
		}
		sum := sha256.Sum256(body)
		helperRef = "boxrun.local/helper:" + hex.EncodeToString(sum[:8])
		archive := filepath.Join(dir, "helper.tar")
		f, err := os.Create(archive)
		if err != nil {
			helperErr = err
			return
		}
		err = kubeimage.Write(f, kubeimage.Spec{Ref: helperRef, Files: []kubeimage.File{
			{Path: "/boxrun", Mode: 0o755, Body: body}, {Path: "/boxrun-init", Mode: 0o777, Link: "boxrun"},
		}, Entrypoint: []string{"/boxrun"}})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			helperErr = err
			return
		}
		ctr := env("BOXRUN_K8S_CTR", "/var/cache/boxrun-k8s/bin/ctr")
		sock := env("BOXRUN_K8S_CONTAINERD", "/run/boxrun-k8s/containerd.sock")
		if out, err := exec.Command(ctr, "-a", sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("ctr import: %v\n%s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperRef
}

// cluster returns the admin REST config and a client.
func cluster(t testing.TB) (*rest.Config, *k8s.Clientset) {
	t.Helper()
	path := env("BOXRUN_K8S_KUBECONFIG", "/var/lib/boxrun-k8s/admin.kubeconfig")
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("kubeconfig %s (run scripts/k8s-up.sh): %v", path, err)
	}
	cs, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return rc, cs
}

// namespace creates a fresh namespace removed at the end of t.
func namespace(t testing.TB, cs *k8s.Clientset) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "boxrun-e2e-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

func newDriver(t testing.TB, rc *rest.Config, ns string) *kubernetes.Driver {
	t.Helper()
	d, err := kubernetes.New(context.Background(), kubernetes.Config{
		REST: rc, Namespace: ns, HelperImage: helperImage(t), PullPolicy: corev1.PullNever, AllowHostPath: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriver(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	boxruntest.TestDriver(t, boxruntest.DriverHarness{
		New:       func(t *testing.T) sandbox.Driver { return newDriver(t, rc, ns) },
		Image:     boxruntest.BusyboxImage(t),
		UserImage: boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser),
	})
}

// A box's pod runs under gVisor: its kernel log is gVisor's.
func TestGVisorKernel(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	d := newDriver(t, rc, ns)
	defer d.Close()
	ctx := t.Context()
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "gvisor-check", Image: boxruntest.BusyboxImage(t), Workdir: "/root"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"dmesg"}}, time.Minute)
	if r.Code != 0 || !strings.Contains(r.Stdout, "gVisor") {
		t.Fatalf("dmesg: code %d, stdout %q, stderr %q: not gVisor's kernel", r.Code, r.Stdout, r.Stderr)
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, h, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.RuntimeClassName == nil || *p.Spec.RuntimeClassName != "gvisor" {
		t.Errorf("pod RuntimeClass = %v", p.Spec.RuntimeClassName)
	}
}

// Bad cluster setups fail New: a RuntimeClass that does not exist, an
// identity without the permissions in the namespace.
func TestNewRefuses(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	ctx := t.Context()
	_, err := kubernetes.New(ctx, kubernetes.Config{REST: rc, Namespace: ns, HelperImage: "h", RuntimeClass: "no-such-class"})
	if !errors.Is(err, kubernetes.ErrRuntimeClass) {
		t.Errorf("absent RuntimeClass: %v, want ErrRuntimeClass", err)
	}
	// A service account with no role at all.
	sa, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saConfig := func() *rest.Config {
		tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := rest.AnonymousClientConfig(rc)
		c.BearerToken = tok.Status.Token
		return c
	}
	_, err = kubernetes.New(ctx, kubernetes.Config{REST: saConfig(), Namespace: ns, HelperImage: "h"})
	if !errors.Is(err, kubernetes.ErrForbidden) {
		t.Fatalf("no permissions: %v, want ErrForbidden", err)
	}
	// The namespaced Role of deploy/kubernetes is enough (the RuntimeClass
	// check is skipped when it cannot be read).
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "boxrun"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"get", "create"}},
	}}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "boxrun"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "boxrun"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := kubernetes.New(ctx, kubernetes.Config{REST: saConfig(), Namespace: ns, HelperImage: "h"})
		if err == nil {
			d.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the namespaced role: %v", err)
		}
		time.Sleep(time.Second)
	}
	// The same identity in another namespace has nothing.
	other := namespace(t, cs)
	if _, err := kubernetes.New(ctx, kubernetes.Config{REST: saConfig(), Namespace: other, HelperImage: "h"}); !errors.Is(err, kubernetes.ErrForbidden) {
		t.Errorf("namespace without permissions: %v, want ErrForbidden", err)
	}
}

// A non-root box user cannot replace the init binary that the driver's
// relay execs run as root, nor reach the agent's socket.
func TestHelperDirProtected(t *testing.T) {
	rc, cs := cluster(t)
	ns := namespace(t, cs)
	d := newDriver(t, rc, ns)
	defer d.Close()
	ctx := t.Context()
	img := boxruntest.BusyboxImageWithUser(t, boxruntest.BusyboxUser)
	h, err := d.Create(ctx, sandbox.Spec{BoxID: "helper-dir", Image: img, User: img.Config.User, Workdir: "/work"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove(context.Background(), h)
	if r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"id", "-u"}}, time.Minute); r.Code != 0 || r.Stdout == "0\n" {
		t.Fatalf("id -u: %+v, want a non-root user", r)
	}
	for _, script := range []string{
		"echo x > /.boxrun/init",
		"mv /.boxrun/init /.boxrun/old",
		"touch /.boxrun/new",
		"ls /.boxrun/agent",
	} {
		r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", script}}, time.Minute)
		if r.Code == 0 {
			t.Errorf("%q as the box user succeeded: %+v", script, r)
		}
	}
	r := boxruntest.Run(t, d, h, sandbox.ProcessSpec{Cmd: []string{"echo", "still"}}, time.Minute)
	if r.Stdout != "still\n" {
		t.Errorf("exec after the attempts: %+v", r)
	}
}
