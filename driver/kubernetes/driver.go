package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/internal/userdb"
	"github.com/boxrun/boxrun/sandbox"
)

// handlePrefix starts every handle (and object name).
const handlePrefix = "boxrun-"

// poll is how often the driver looks at a pod it waits for.
const poll = 200 * time.Millisecond

// validHandle reports whether h has the form of the driver's handles, so
// that no other object name reaches the API through a handle.
func validHandle(h string) bool {
	hex, ok := strings.CutPrefix(h, handlePrefix)
	return ok && len(hex) == 16 && strings.Trim(hex, "0123456789abcdef") == ""
}

func newHandle() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return handlePrefix + hex.EncodeToString(b[:])
}

// validate checks spec and returns the box's metadata.
func (d *Driver) validate(spec sandbox.Spec) (*boxMeta, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("kubernetes: "+format+": %w", append(a, boxapi.ErrInvalid)...)
	}
	if spec.Image == nil || spec.Image.Ref == "" {
		return nil, bad("a box needs an image (pods run the cluster's images)")
	}
	if len(spec.Ports) > 0 {
		return nil, bad("published ports are not supported on Kubernetes")
	}
	if spec.Egress != nil {
		return nil, bad("egress policies are not supported on Kubernetes")
	}
	if spec.CPU < 0 || spec.MemoryMB < 0 || spec.DiskSizeGB < 0 {
		return nil, bad("negative limits")
	}
	workdir := spec.Workdir
	if workdir == "" {
		workdir = "/"
	}
	if !path.IsAbs(workdir) {
		return nil, bad("workdir %q is not absolute", spec.Workdir)
	}
	workdir = path.Clean(workdir)
	if workdir == helperDir || strings.HasPrefix(workdir, helperDir+"/") {
		return nil, bad("workdir %q is reserved", workdir)
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, bad("env entry %q is not KEY=VALUE", kv)
		}
	}
	if len(spec.Volumes) > 0 && !d.cfg.AllowHostPath {
		return nil, bad("volumes (hostPath) are not allowed by this server")
	}
	for _, v := range spec.Volumes {
		if !path.IsAbs(v.HostPath) || !path.IsAbs(v.GuestPath) {
			return nil, bad("volume paths must be absolute (%q:%q)", v.HostPath, v.GuestPath)
		}
		if g := path.Clean(v.GuestPath); g == "/" || g == helperDir || strings.HasPrefix(g, helperDir+"/") || g == workdir {
			return nil, bad("volume guest path %q is reserved", v.GuestPath)
		}
	}
	// Pinned to what the registry gave the server for this name, so the
	// node runs the same image; an image the server loaded or built has no
	// registry digest (the node has it under its name, e.g. imported).
	ref := spec.Image.Ref
	if spec.Image.Remote != "" && !strings.Contains(ref, "@") {
		ref += "@" + spec.Image.Remote
	}
	m := &boxMeta{
		BoxID: spec.BoxID, Image: ref, CPU: spec.CPU, MemoryMB: spec.MemoryMB, Network: spec.Network,
		Workdir: workdir, Env: slices.Clone(spec.Env), Volumes: slices.Clone(spec.Volumes),
	}
	u, err := userdb.Resolve(spec.Image.Rootfs, spec.User)
	switch {
	case errors.Is(err, userdb.ErrUnknown), errors.Is(err, userdb.ErrSyntax):
		return nil, fmt.Errorf("kubernetes: user %q: %w: %w", spec.User, err, boxapi.ErrInvalid)
	case err != nil:
		return nil, fmt.Errorf("kubernetes: user %q: %w", spec.User, err)
	}
	m.User = u
	return m, nil
}

// Create makes the box's claim and pod and waits until the pod runs and
// its agent answers. On failure it deletes both.
func (d *Driver) Create(ctx context.Context, spec sandbox.Spec) (string, error) {
	if err := d.checkOpen(); err != nil {
		return "", err
	}
	m, err := d.validate(spec)
	if err != nil {
		return "", err
	}
	h := newHandle()
	pvc, err := d.claim(h, m, spec.DiskSizeGB)
	if err != nil {
		return "", err
	}
	ns := d.cfg.Namespace
	if _, err := d.cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("kubernetes: create claim: %w", apiErr(err))
	}
	if err := d.startPod(ctx, h, m); err != nil {
		d.destroy(h)
		return "", err
	}
	return h, nil
}

// startPod creates the pod of h and waits for it and its agent.
func (d *Driver) startPod(ctx context.Context, h string, m *boxMeta) error {
	if _, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Create(ctx, d.pod(h, m), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubernetes: create pod: %w", apiErr(err))
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	for {
		p, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Get(wctx, h, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("kubernetes: pod %s: %w", h, apiErr(ctxOr(wctx, err)))
		}
		if running(p) {
			break
		}
		if why := failed(p); why != "" {
			return fmt.Errorf("kubernetes: pod %s did not start: %s: %w", h, why, boxapi.ErrRuntime)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kubernetes: pod %s not running after %v (%s): %w", h, d.cfg.StartTimeout, pending(p), boxapi.ErrRuntime)
		case <-time.After(poll):
		}
	}
	for {
		_, err := d.agent(wctx, h, m)
		if err == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kubernetes: agent of %s did not answer: %w: %w", h, err, boxapi.ErrRuntime)
		case <-time.After(poll):
		}
	}
}

// running reports whether the box container of p runs.
func running(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == boxContainer {
			return cs.State.Running != nil
		}
	}
	return false
}

// failed says why p cannot run any more ("" while it may).
func failed(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return "pod " + strings.ToLower(string(p.Status.Phase)) + " " + p.Status.Message
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "ImagePullBackOff", "ErrImagePull", "RunContainerError":
				return cs.Name + ": " + w.Reason + ": " + w.Message
			}
		}
		if t := cs.State.Terminated; t != nil && (cs.Name == boxContainer || t.ExitCode != 0) {
			return fmt.Sprintf("%s: exited %d: %s %s", cs.Name, t.ExitCode, t.Reason, t.Message)
		}
	}
	return ""
}

// pending describes why p is not running yet.
func pending(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return string(c.Type) + ": " + c.Message
		}
	}
	return "phase " + string(p.Status.Phase)
}

// Start creates the pod of a stopped box again. Its workdir has the files
// it had.
func (d *Driver) Start(ctx context.Context, h string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	pvc, err := d.getClaim(ctx, h)
	if err != nil {
		return err
	}
	m, err := metaOf(pvc)
	if err != nil {
		return err
	}
	p, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Get(ctx, h, metav1.GetOptions{})
	switch {
	case err == nil && p.DeletionTimestamp == nil && failed(p) == "":
		return fmt.Errorf("kubernetes: box %s is running: %w", h, boxapi.ErrConflict)
	case err == nil:
		// A pod that died or is going: clear it first.
		if err := d.deletePod(ctx, h, 0); err != nil {
			return err
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes: pod %s: %w", h, apiErr(err))
	}
	if err := d.startPod(ctx, h, m); err != nil {
		_ = d.deletePod(context.WithoutCancel(ctx), h, 0)
		return err
	}
	return nil
}

// Stop deletes the pod (its processes end; SIGTERM then, after a few
// seconds, SIGKILL) and keeps the claim.
func (d *Driver) Stop(ctx context.Context, h string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	if _, err := d.getClaim(ctx, h); err != nil {
		return err
	}
	d.closeAgent(h)
	return d.deletePod(ctx, h, 5)
}

// deletePod deletes the pod of h and waits until it is gone.
func (d *Driver) deletePod(ctx context.Context, h string, grace int64) error {
	pods := d.cs.CoreV1().Pods(d.cfg.Namespace)
	err := pods.Delete(ctx, h, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete pod %s: %w", h, apiErr(err))
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		_, err := pods.Get(wctx, h, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil && wctx.Err() == nil {
			return fmt.Errorf("kubernetes: pod %s: %w", h, apiErr(err))
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kubernetes: pod %s still there: %w: %w", h, wctx.Err(), boxapi.ErrRuntime)
		case <-time.After(poll):
		}
	}
}

// Remove deletes the pod and the claim (and with it the box's files).
// Removing an unknown handle is not an error. It works after Close, as the
// other drivers' Remove does (Close releases the driver's own resources,
// not the boxes).
func (d *Driver) Remove(ctx context.Context, h string) error {
	if !validHandle(h) {
		return nil
	}
	d.closeAgent(h)
	if err := d.deletePod(ctx, h, 0); err != nil {
		return err
	}
	err := d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace).Delete(ctx, h, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete claim %s: %w", h, apiErr(err))
	}
	return nil
}

// destroy is Remove for cleanups: it outlives the caller's context.
func (d *Driver) destroy(h string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.closeAgent(h)
	if err := d.deletePod(ctx, h, 0); err != nil {
		d.log.Warn("kubernetes: cleanup", "handle", h, "err", err)
	}
	err := d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace).Delete(ctx, h, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		d.log.Warn("kubernetes: cleanup", "handle", h, "err", err)
	}
}

// getClaim returns the claim of a box that exists (ErrNotFound otherwise).
func (d *Driver) getClaim(ctx context.Context, h string) (*corev1.PersistentVolumeClaim, error) {
	if !validHandle(h) {
		return nil, fmt.Errorf("kubernetes: no box %q: %w", h, boxapi.ErrNotFound)
	}
	pvc, err := d.cs.CoreV1().PersistentVolumeClaims(d.cfg.Namespace).Get(ctx, h, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && pvc.DeletionTimestamp != nil {
		return nil, fmt.Errorf("kubernetes: no box %q: %w", h, boxapi.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: claim %s: %w", h, apiErr(err))
	}
	if pvc.Labels[labelInstance] != d.cfg.Instance {
		return nil, fmt.Errorf("kubernetes: box %q belongs to another instance: %w", h, boxapi.ErrNotFound)
	}
	return pvc, nil
}

// State is Missing without a claim, Running while the pod's box container
// runs, and Stopped otherwise.
func (d *Driver) State(ctx context.Context, h string) (sandbox.State, error) {
	if _, err := d.getClaim(ctx, h); errors.Is(err, boxapi.ErrNotFound) {
		return sandbox.Missing, nil
	} else if err != nil {
		return "", err
	}
	p, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Get(ctx, h, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return sandbox.Stopped, nil
	case err != nil:
		return "", fmt.Errorf("kubernetes: pod %s: %w", h, apiErr(err))
	case running(p):
		return sandbox.Running, nil
	}
	return sandbox.Stopped, nil
}

// Prune deletes every pod and claim of this instance whose handle is not
// in keep.
func (d *Driver) Prune(ctx context.Context, keep []string) error {
	if err := d.checkOpen(); err != nil {
		return err
	}
	ns := d.cfg.Namespace
	opts := metav1.ListOptions{LabelSelector: d.selector()}
	stray := map[string]bool{}
	pods, err := d.cs.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("kubernetes: list pods: %w", apiErr(err))
	}
	for _, p := range pods.Items {
		if h := p.Labels[labelHandle]; !slices.Contains(keep, h) {
			stray[h] = true
		}
	}
	pvcs, err := d.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("kubernetes: list claims: %w", apiErr(err))
	}
	for _, c := range pvcs.Items {
		if h := c.Labels[labelHandle]; !slices.Contains(keep, h) {
			stray[h] = true
		}
	}
	var errs []error
	for h := range stray {
		if !validHandle(h) {
			continue
		}
		d.closeAgent(h)
		grace := int64(0)
		if err := d.cs.CoreV1().Pods(ns).Delete(ctx, h, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		if err := d.cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, h, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubernetes: prune: %w", err)
	}
	return nil
}

// apiErr maps API errors to BoxRun's.
func apiErr(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %w", err, boxapi.ErrNotFound)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("%w: %w", err, boxapi.ErrInvalid)
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		return fmt.Errorf("%w: %w", err, boxapi.ErrConflict)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", err, boxapi.ErrRuntime)
}

// ctxOr returns ctx's error when it ended, else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
