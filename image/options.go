package image

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures a Store in Open.
type Option func(*options) error

type options struct {
	keychain  authn.Keychain
	platform  v1.Platform
	logger    *slog.Logger
	transport http.RoundTripper
	insecure  bool
	jobs      int
	remote    []remote.Option
	policy    PullPolicy
	// registries by normalized host (registryKey)
	registries map[string]*registryConf
}

func defaultOptions() options {
	return options{
		keychain: authn.DefaultKeychain,
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		logger:   slog.New(slog.DiscardHandler),
		jobs:     3,
		policy:   PullAlways,
	}
}

// WithKeychain sets where registry credentials come from. The default is
// authn.DefaultKeychain: the Docker config (~/.docker/config.json,
// $DOCKER_CONFIG) and its credential helpers, anonymous otherwise.
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		if k == nil {
			return fmt.Errorf("image: nil keychain")
		}
		o.keychain = k
		return nil
	}
}

// WithPlatform sets the platform picked from multi-arch images, as
// "os/arch[/variant]" (for example "linux/arm64"). The default is linux on
// the host's architecture (runtime.GOARCH): boxes run Linux whatever the host.
func WithPlatform(platform string) Option {
	return func(o *options) error {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return fmt.Errorf("image: platform %q: %w", platform, err)
		}
		if p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("image: platform %q: want os/arch", platform)
		}
		o.platform = *p
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l != nil {
			o.logger = l
		}
		return nil
	}
}

// WithTransport sets the HTTP transport for registry requests. The default
// is go-containerregistry's remote.DefaultTransport. Authentication and
// retries are layered on top of it.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error { o.transport = t; return nil }
}

// WithInsecure makes registry pulls use plain HTTP for every registry. Even
// without it, registries on localhost, loopback addresses, RFC 1918 private
// addresses and *.local names are reached over plain HTTP (the rule of
// go-containerregistry's name package).
func WithInsecure(insecure bool) Option {
	return func(o *options) error { o.insecure = insecure; return nil }
}

// WithConcurrency sets how many layers of one image are fetched and
// unpacked at the same time. Default 3.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("image: concurrency %d < 1", n)
		}
		o.jobs = n
		return nil
	}
}

// WithRemoteOptions adds go-containerregistry remote options to every
// registry request, after the Store's own (so they win): for example
// remote.WithRetryBackoff or remote.WithUserAgent.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) error { o.remote = append(o.remote, opts...); return nil }
}

// PullPolicy says when Pull asks a registry whether a cached tag moved.
type PullPolicy string

// Pull policies.
const (
	// PullAlways checks a cached tag with one HEAD request and pulls what
	// changed; when the registry cannot be reached, the cached image is
	// used. The default.
	PullAlways PullPolicy = "always"
	// PullMissing uses a cached image without asking the registry, as
	// `docker run` does; only references not cached are pulled.
	PullMissing PullPolicy = "missing"
	// PullNever uses only cached images: a reference not cached fails at
	// once, without contacting any registry.
	PullNever PullPolicy = "never"
)

// ParsePullPolicy checks a pull policy name; "" is "".
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case "", PullAlways, PullMissing, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("unknown pull policy %q: want always, missing or never", s)
}

// WithPullPolicy sets when cached tags are checked against the registry.
// Default PullAlways. Digest references and local sources never need it.
// PullOptions.Policy overrides it for one pull.
func WithPullPolicy(p PullPolicy) Option {
	return func(o *options) error {
		if p != PullAlways && p != PullMissing && p != PullNever {
			return fmt.Errorf("image: unknown pull policy %q", p)
		}
		o.policy = p
		return nil
	}
}

// CheckOptions reports the first error opts would make Open fail with,
// touching nothing: for checking configuration early.
func CheckOptions(opts ...Option) error {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	_, err := registryTransport(o.transport, o.registries)
	return err
}
