package kubernetes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/sandbox"
)

// Bad configuration fails New, before any box: these run without a cluster.
func TestNewBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{Kubeconfig: "/x"}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Errorf("no helper image: %v, want ErrInvalid", err)
	}
	if _, err := New(ctx, Config{HelperImage: "h", Kubeconfig: filepath.Join(t.TempDir(), "missing")}); !errors.Is(err, ErrConfig) {
		t.Errorf("missing kubeconfig: %v, want ErrConfig", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("{not yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{HelperImage: "h", Kubeconfig: bad}); !errors.Is(err, ErrConfig) {
		t.Errorf("malformed kubeconfig: %v, want ErrConfig", err)
	}
	// A kubeconfig naming a server nobody serves: the check at New fails.
	dead := filepath.Join(t.TempDir(), "dead")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n" +
		"users:\n- name: u\n  user: {token: x}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
	if err := os.WriteFile(dead, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{HelperImage: "h", Kubeconfig: dead}); !errors.Is(err, ErrConfig) {
		t.Errorf("unreachable API server: %v, want ErrConfig", err)
	}
	if _, err := New(ctx, Config{HelperImage: "h", Kubeconfig: dead, Instance: "Bad_Name"}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Errorf("bad instance: %v, want ErrInvalid", err)
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		if _, err := New(ctx, Config{HelperImage: "h"}); !errors.Is(err, ErrConfig) {
			t.Errorf("no kubeconfig outside a pod: %v, want ErrConfig", err)
		}
	}
}

// Box specs the driver cannot honour are refused before anything is made.
func TestValidate(t *testing.T) {
	d := &Driver{cfg: Config{Namespace: "ns", Instance: "default"}}
	img := &sandbox.Image{Ref: "busybox-test"}
	for name, spec := range map[string]sandbox.Spec{
		"no image":        {},
		"ports":           {Image: img, Network: true, Ports: []boxapi.PortMapping{{HostPort: 8080, BoxPort: 80}}},
		"egress":          {Image: img, Network: true, Egress: &boxapi.EgressPolicy{}},
		"relative":        {Image: img, Workdir: "work"},
		"reserved":        {Image: img, Workdir: "/.boxrun/x"},
		"env":             {Image: img, Env: []string{"NOEQUALS"}},
		"negative":        {Image: img, CPU: -1},
		"hostPath denied": {Image: img, Volumes: []boxapi.Volume{{HostPath: "/etc", GuestPath: "/mnt"}}},
		"unknown user":    {Image: img, User: "nosuchuser"},
	} {
		if _, err := d.validate(spec); !errors.Is(err, boxapi.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	d.cfg.AllowHostPath = true
	for name, v := range map[string]boxapi.Volume{
		"relative host": {HostPath: "etc", GuestPath: "/mnt"},
		"root guest":    {HostPath: "/etc", GuestPath: "/"},
		"helper guest":  {HostPath: "/etc", GuestPath: "/.boxrun"},
	} {
		if _, err := d.validate(sandbox.Spec{Image: img, Volumes: []boxapi.Volume{v}}); !errors.Is(err, boxapi.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// Pinned to the registry's digest, never to a local one (a loaded
	// image's, unknown to any registry).
	if m, err := d.validate(sandbox.Spec{Image: &sandbox.Image{Ref: "loaded", Digest: "sha256:cd"}}); err != nil || m.Image != "loaded" {
		t.Errorf("loaded image: %q %v, want the name as is", m.Image, err)
	}
	m, err := d.validate(sandbox.Spec{Image: &sandbox.Image{Ref: "r", Digest: "sha256:cd", Remote: "sha256:ab"}, Workdir: "/w/", User: "12:34"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Image != "r@sha256:ab" || m.Workdir != "/w" || m.User.UID != 12 || m.User.GID != 34 {
		t.Errorf("meta = %+v", m)
	}
	p := d.pod(newHandle(), m)
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Error("box pods must not get a service account token")
	}
	if p.Spec.HostNetwork || p.Spec.HostPID || p.Spec.HostIPC {
		t.Error("box pods must not share host namespaces")
	}
	if p.Labels[labelNetwork] != "none" {
		t.Error("a box without network lacks the network=none label")
	}
}

func TestHandles(t *testing.T) {
	h := newHandle()
	if !validHandle(h) || !strings.HasPrefix(h, handlePrefix) {
		t.Errorf("newHandle %q is not valid", h)
	}
	for _, bad := range []string{"", "boxrun-", "kube-apiserver", "boxrun-0123456789abcdeF", "boxrun-../../x1234567", handlePrefix + "0123456789abcdef0"} {
		if validHandle(bad) {
			t.Errorf("validHandle(%q) = true", bad)
		}
	}
}
