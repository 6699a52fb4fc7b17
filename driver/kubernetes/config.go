package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/boxrun/boxrun/boxapi"
)

// Config configures a Driver. The zero value of every field but
// HelperImage has a default.
type Config struct {
	// Kubeconfig is the kubeconfig file to use. "" uses the in-cluster
	// config (a pod's service account) when running in a pod, else fails.
	Kubeconfig string
	// REST, when set, is used instead of Kubeconfig (tests, embedding).
	REST *rest.Config
	// Namespace holds every pod and claim of the driver (default "default").
	Namespace string
	// RuntimeClass is the RuntimeClass of box pods (default "gvisor"); New
	// fails when the cluster has none of that name.
	RuntimeClass string
	// HelperImage is an image with the boxrun binary at /boxrun-init (for
	// example the image `boxrun serve` itself runs from). Required.
	HelperImage string
	// StorageClass of the boxes' claims; "" uses the cluster's default.
	StorageClass string
	// PullPolicy of box and helper images (default IfNotPresent).
	PullPolicy corev1.PullPolicy
	// AllowHostPath lets boxes mount volumes (hostPath of the node).
	AllowHostPath bool
	// IsolateNetwork makes New create the NetworkPolicy that denies all
	// traffic of boxes created without network (see the package doc).
	IsolateNetwork bool
	// Instance tells apart drivers sharing a namespace: Prune only touches
	// objects of its own instance (default "default").
	Instance string
	// StartTimeout bounds how long Create and Start wait for a pod to run
	// and its agent to answer (default 3 minutes).
	StartTimeout time.Duration
	// Logger receives the driver's warnings (default: discarded).
	Logger *slog.Logger
}

// Errors of New, wrapped with the details.
var (
	// ErrConfig: no usable kubeconfig or in-cluster config.
	ErrConfig = errors.New("kubernetes: no usable cluster configuration")
	// ErrRuntimeClass: the RuntimeClass does not exist.
	ErrRuntimeClass = errors.New("kubernetes: RuntimeClass not found")
	// ErrForbidden: the identity may not do what the driver needs.
	ErrForbidden = errors.New("kubernetes: missing permission")
)

// Driver is the Kubernetes sandbox.Driver. It is safe for concurrent use.
type Driver struct {
	cfg  Config
	rest *rest.Config
	cs   *k8s.Clientset
	log  *slog.Logger

	// ctx lives until Close: the agent relays run under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	agents map[string]*agentBox
	closed bool
}

// permissions are what New checks the identity may do in the namespace.
var permissions = []authzv1.ResourceAttributes{
	{Verb: "create", Resource: "pods"},
	{Verb: "get", Resource: "pods"},
	{Verb: "list", Resource: "pods"},
	{Verb: "delete", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"},
	{Verb: "get", Resource: "pods", Subresource: "exec"},
	{Verb: "create", Resource: "persistentvolumeclaims"},
	{Verb: "get", Resource: "persistentvolumeclaims"},
	{Verb: "list", Resource: "persistentvolumeclaims"},
	{Verb: "delete", Resource: "persistentvolumeclaims"},
}

// New connects to the cluster and checks, before any box exists, that the
// driver can work there: configuration, API server, RuntimeClass and the
// permissions in the namespace (errors wrap ErrConfig, ErrRuntimeClass or
// ErrForbidden).
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.RuntimeClass == "" {
		cfg.RuntimeClass = "gvisor"
	}
	if cfg.PullPolicy == "" {
		cfg.PullPolicy = corev1.PullIfNotPresent
	}
	if cfg.Instance == "" {
		cfg.Instance = "default"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HelperImage == "" {
		return nil, fmt.Errorf("kubernetes: Config.HelperImage is required: %w", boxapi.ErrInvalid)
	}
	if len(cfg.Instance) > 63 || strings.Trim(cfg.Instance, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return nil, fmt.Errorf("kubernetes: instance %q: lowercase letters, digits and '-' only (63 at most): %w", cfg.Instance, boxapi.ErrInvalid)
	}
	rc := cfg.REST
	if rc == nil {
		var err error
		rc, err = loadConfig(cfg.Kubeconfig)
		if err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 100, 200
	cs, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cs.NodeV1().RuntimeClasses().Get(cctx, cfg.RuntimeClass, metav1.GetOptions{}); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%w: %q (create it, e.g. handler runsc for gVisor)", ErrRuntimeClass, cfg.RuntimeClass)
		case apierrors.IsForbidden(err):
			// Reading RuntimeClasses is cluster-wide; an identity limited to
			// its namespace cannot check, and a missing class then shows at
			// the first pod.
		default:
			return nil, fmt.Errorf("%w: API server %s: %w", ErrConfig, rc.Host, err)
		}
	}
	var missing []string
	for _, p := range permissions {
		p.Namespace = cfg.Namespace
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(cctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &p},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("%w: access review: %w", ErrConfig, err)
		}
		if !r.Status.Allowed {
			name := p.Resource
			if p.Subresource != "" {
				name += "/" + p.Subresource
			}
			missing = append(missing, p.Verb+" "+name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w in namespace %q: %s", ErrForbidden, cfg.Namespace, strings.Join(missing, ", "))
	}
	d := &Driver{cfg: cfg, rest: rc, cs: cs, log: cfg.Logger, agents: map[string]*agentBox{}}
	if cfg.IsolateNetwork {
		if err := d.ensureNetworkPolicy(cctx); err != nil {
			return nil, err
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// loadConfig reads path, or the in-cluster config when path is "".
func loadConfig(path string) (*rest.Config, error) {
	if path == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("%w: no kubeconfig given and not in a pod: %w", ErrConfig, err)
		}
		return rc, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: kubeconfig: %w", ErrConfig, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("%w: kubeconfig %s: %w", ErrConfig, path, err)
	}
	return rc, nil
}

// networkPolicyName is the NetworkPolicy of Config.IsolateNetwork.
const networkPolicyName = "boxrun-no-network"

// ensureNetworkPolicy creates the deny-all policy for boxes without network.
func (d *Driver) ensureNetworkPolicy(ctx context.Context) error {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: networkPolicyName, Labels: map[string]string{labelManagedBy: managedBy}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelManagedBy: managedBy, labelNetwork: "none"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	_, err := d.cs.NetworkingV1().NetworkPolicies(d.cfg.Namespace).Create(ctx, np, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubernetes: network policy: %w", err)
	}
	return nil
}

// Name returns "kubernetes".
func (d *Driver) Name() string { return "kubernetes" }

// Describe reports where boxes run.
func (d *Driver) Describe() map[string]string {
	return map[string]string{
		"api_server":    d.rest.Host,
		"namespace":     d.cfg.Namespace,
		"runtime_class": d.cfg.RuntimeClass,
		"instance":      d.cfg.Instance,
		"persists":      "workdir",
	}
}

// Close closes the agent relays; pods keep running. It is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	agents := d.agents
	d.agents = map[string]*agentBox{}
	d.mu.Unlock()
	for _, ab := range agents {
		ab.close()
	}
	d.cancel()
	return nil
}

func (d *Driver) checkOpen() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("kubernetes: driver closed: %w", boxapi.ErrClosed)
	}
	return nil
}
